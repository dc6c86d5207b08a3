//! The bundle component: a tiny generated component exporting
//! `larder:vfs/bundle` that holds an fs-core image in a *passive* data
//! segment. Instantiating it copies nothing; `read-image` copies a requested
//! range with `memory.init`, so start-up does not grow with the bundle.

use anyhow::{Context, Result};
use wasm_encoder::{
    CodeSection, ConstExpr, DataCountSection, DataSection, ExportKind, ExportSection, Function,
    FunctionSection, MemArg, MemArgTarget, MemorySection, MemoryType, Module, TypeSection, ValType,
};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

/// Larder's WIT, with the WASI packages it uses, compiled into the binary.
const WIT: &[(&str, &str)] = &[
    ("io.wit", include_str!("../../../wit/deps/io.wit")),
    (
        "clocks-0.2.wit",
        include_str!("../../../wit/deps/clocks-0.2.wit"),
    ),
    (
        "clocks-0.3.wit",
        include_str!("../../../wit/deps/clocks-0.3.wit"),
    ),
    (
        "filesystem-0.2.wit",
        include_str!("../../../wit/deps/filesystem-0.2.wit"),
    ),
    (
        "filesystem-0.3.wit",
        include_str!("../../../wit/deps/filesystem-0.3.wit"),
    ),
    ("random.wit", include_str!("../../../wit/deps/random.wit")),
    ("sockets.wit", include_str!("../../../wit/deps/sockets.wit")),
    ("cli.wit", include_str!("../../../wit/deps/cli.wit")),
    ("http.wit", include_str!("../../../wit/deps/http.wit")),
    ("larder.wit", include_str!("../../../wit/larder.wit")),
];

/// World `name` of Larder's WIT, with the packages it uses resolved.
/// A generated core module made a component of `world` (its WIT embedded,
/// then encoded and validated).
pub(crate) fn component_of(
    mut module: Vec<u8>,
    resolve: &Resolve,
    world: wit_parser::WorldId,
) -> Result<Vec<u8>> {
    wit_component::embed_component_metadata(
        &mut module,
        resolve,
        world,
        StringEncoding::UTF8,
        false,
    )?;
    ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
}

pub(crate) fn world(name: &str) -> Result<(Resolve, wit_parser::WorldId)> {
    let mut resolve = Resolve::default();
    let mut pkg = None;
    for (file, text) in WIT {
        pkg = Some(resolve.push_source(file, text)?);
    }
    let world = resolve.select_world(&[pkg.expect("larder.wit")], Some(name))?;
    Ok((resolve, world))
}

/// The name of the bundle interface, as components import and export it.
pub const INTERFACE: &str = "larder:vfs/bundle@0.1.0";

/// A directory offered to the app: `name` (what the guest calls it, such
/// as `/` or `.`) opens the absolute guest directory `path`; `read_only`
/// gives it no `mutate-directory` and its files no writing (wasmtime's
/// read-only preopen), so every change through it is `not-permitted`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub name: String,
    pub path: String,
    pub read_only: bool,
}

impl Preopen {
    /// `NAME[=/GUEST_DIR][:ro]`, as `--preopen` takes it (`larder run`,
    /// `larder compose`, `larder adapter`); the directory defaults to `/`.
    pub fn parse(spec: &str) -> Result<Preopen, String> {
        let (s, read_only) = match spec.strip_suffix(":ro") {
            Some(rest) => (rest, true),
            None => (spec, false),
        };
        let (name, path) = s.split_once('=').unwrap_or((s, "/"));
        if name.is_empty() || !path.starts_with('/') {
            return Err(format!(
                "bad --preopen `{spec}`: expected NAME or NAME=/GUEST_DIR, optionally with :ro"
            ));
        }
        Ok(Preopen {
            name: name.to_string(),
            path: path.to_string(),
            read_only,
        })
    }
}

/// What the bundle tells the adapter.
#[derive(Debug, Default)]
pub struct Bundle {
    pub image: Vec<u8>,
    pub preopens: Vec<Preopen>,
    /// Absolute guest paths of read-only mounts.
    pub read_only: Vec<String>,
    /// Where the S3-persisting build keeps the files (`s3://...`); no
    /// credentials, which come from the environment at run time.
    pub store: String,
}

/// Where the static data (return areas, records, strings) starts; page 0
/// below it stays unused so no pointer is null.
const STATIC_BASE: u32 = 16;

/// Canonical-ABI layout of the constant answers, built at STATIC_BASE.
struct Layout {
    bytes: Vec<u8>,
}

impl Layout {
    fn addr(&self) -> u32 {
        STATIC_BASE + self.bytes.len() as u32
    }
    fn align(&mut self) {
        while !self.bytes.len().is_multiple_of(8) {
            self.bytes.push(0);
        }
    }
    fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    /// Places `s` and returns (pointer, length).
    fn string(&mut self, s: &str) -> (u32, u32) {
        let at = self.addr();
        self.bytes.extend_from_slice(s.as_bytes());
        self.align();
        (at, s.len() as u32)
    }
    /// Places a list of records and its return area; returns the return
    /// area's address. Each record is its strings (ptr/len pairs), then an
    /// optional bool, padded to the record's 4-byte alignment.
    fn list(&mut self, items: &[(Vec<&str>, Option<bool>)]) -> u32 {
        let strings: Vec<Vec<(u32, u32)>> = items
            .iter()
            .map(|(fields, _)| fields.iter().map(|f| self.string(f)).collect())
            .collect();
        let list = self.addr();
        for (fields, (_, flag)) in strings.iter().zip(items) {
            for &(p, l) in fields {
                self.u32(p);
                self.u32(l);
            }
            if let Some(b) = flag {
                self.bytes.extend_from_slice(&[u8::from(*b), 0, 0, 0]);
            }
        }
        self.align();
        let ret = self.addr();
        self.u32(list);
        self.u32(items.len() as u32);
        ret
    }
}

/// What the bundle component's passive segment holds: the image, or a
/// placeholder the image replaces as the composition is written out
/// (`len` is then the image's length, not the placeholder's).
pub(crate) struct Segment<'a> {
    pub bytes: &'a [u8],
    pub len: u64,
}

impl<'a> Segment<'a> {
    pub fn of(image: &'a [u8]) -> Segment<'a> {
        Segment {
            bytes: image,
            len: image.len() as u64,
        }
    }
}

/// The bundle as a component exporting `larder:vfs/bundle`.
pub fn component(bundle: &Bundle) -> Result<Vec<u8>> {
    component_with(bundle, &Segment::of(&bundle.image))
}

/// [`component`] with `segment` as its image.
pub(crate) fn component_with(bundle: &Bundle, segment: &Segment<'_>) -> Result<Vec<u8>> {
    let image_len = u32::try_from(segment.len)
        .ok()
        .filter(|&n| n < u32::MAX - (1 << 20))
        .context("bundled directories exceed 4 GiB, the most one bundle can hold")?;

    let mut layout = Layout { bytes: Vec::new() };
    let preopens: Vec<_> = bundle
        .preopens
        .iter()
        .map(|p| (vec![p.name.as_str(), p.path.as_str()], Some(p.read_only)))
        .collect();
    let ret_preopens = layout.list(&preopens);
    let read_only: Vec<_> = bundle
        .read_only
        .iter()
        .map(|p| (vec![p.as_str()], None))
        .collect();
    let ret_read_only = layout.list(&read_only);
    let (store_at, store_len) = layout.string(&bundle.store);
    let ret_store = layout.addr();
    layout.u32(store_at);
    layout.u32(store_len);
    layout.align();
    let ret_read = layout.addr();
    layout.u32(0);
    layout.u32(0);
    layout.align();
    // Reads land on the page after the static data.
    let scratch = layout.addr().div_ceil(65536) * 65536;
    let pages = u64::from(scratch / 65536 + 1);

    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    types.ty().function([], [ValType::I64]);
    types
        .ty()
        .function([ValType::I64, ValType::I32], [ValType::I32]);
    let mut funcs = FunctionSection::new();
    for ty in [0, 0, 1, 2, 0] {
        funcs.function(ty);
    }
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    for (i, f) in ["preopens", "read-only", "image-size", "read-image", "store"]
        .iter()
        .enumerate()
    {
        exports.export(&format!("{INTERFACE}#{f}"), ExportKind::Func, i as u32);
    }

    let mut code = CodeSection::new();
    for ret in [ret_preopens, ret_read_only] {
        let mut f = Function::new([]);
        f.instructions().i32_const(ret as i32).end();
        code.function(&f);
    }
    let mut f = Function::new([]);
    f.instructions().i64_const(i64::from(image_len)).end();
    code.function(&f);
    // read-image(offset: i64, len: i32) -> i32: grow memory to fit, copy
    // from the passive segment, fill the return area.
    let mut f = Function::new([(1, ValType::I32)]);
    let arg = |offset| MemArg {
        offset,
        align: 2,
        target: MemArgTarget::Memory(0),
        ordering: None,
    };
    f.instructions()
        // pages needed = (scratch + len + 65535) >> 16
        .local_get(1)
        .i32_const(scratch as i32 + 65535)
        .i32_add()
        .i32_const(16)
        .i32_shr_u()
        .memory_size(0)
        .i32_sub()
        .local_tee(2)
        .i32_const(0)
        .i32_gt_s()
        .if_(wasm_encoder::BlockType::Empty)
        .local_get(2)
        .memory_grow(0)
        .drop()
        .end()
        .i32_const(scratch as i32)
        .local_get(0)
        .i32_wrap_i64()
        .local_get(1)
        .memory_init(0, 1)
        .i32_const(ret_read as i32)
        .i32_const(scratch as i32)
        .i32_store(arg(0))
        .i32_const(ret_read as i32)
        .local_get(1)
        .i32_store(arg(4))
        .i32_const(ret_read as i32)
        .end();
    code.function(&f);
    let mut f = Function::new([]);
    f.instructions().i32_const(ret_store as i32).end();
    code.function(&f);

    let mut data = DataSection::new();
    data.active(0, &ConstExpr::i32_const(STATIC_BASE as i32), layout.bytes);
    data.passive(segment.bytes.iter().copied());

    let mut module = Module::new();
    module
        .section(&types)
        .section(&funcs)
        .section(&memories)
        .section(&exports)
        .section(&DataCountSection { count: 2 })
        .section(&code)
        .section(&data);
    let module = module.finish();

    let (resolve, world) = world("bundle-provider")?;
    component_of(module, &resolve, world).context("encoding the bundle component")
}
