//! The `no-filesystem` component (see wit/larder.wit): `wasi:filesystem`
//! with no preopens, for the adapter's own libc. Made from wit-component's
//! dummy module (every function traps), with the two functions a libc may
//! call without holding a descriptor answering instead: `get-directories`
//! gives an empty list and `filesystem-error-code` gives none. No
//! descriptor can ever exist, so nothing else is reachable.

use anyhow::{Context, Result};
use wasm_encoder::reencode::{self, Reencode, RoundtripReencoder};
use wit_parser::{LiftLowerAbi, ManglingAndAbi};

/// Where the answers are read from: zeroed memory reads as an empty list
/// (pointer 0, length 0) and as `none`.
const ZEROS: i32 = 16;

const ANSWERING: [&str; 2] = [
    "wasi:filesystem/preopens@0.2.12#get-directories",
    "wasi:filesystem/types@0.2.12#filesystem-error-code",
];

/// Copies the dummy module, giving it one page of memory and replacing the
/// bodies of the functions in `answering` (defined-function indices).
struct Answer {
    answering: Vec<u32>,
    next: u32,
}

impl Reencode for Answer {
    type Error = std::convert::Infallible;

    fn memory_type(
        &mut self,
        ty: wasmparser::MemoryType,
    ) -> Result<wasm_encoder::MemoryType, reencode::Error<Self::Error>> {
        let mut ty = RoundtripReencoder.memory_type(ty)?;
        ty.minimum = ty.minimum.max(1);
        Ok(ty)
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        let index = self.next;
        self.next += 1;
        if !self.answering.contains(&index) {
            return reencode::utils::parse_function_body(self, code, func);
        }
        let mut f = wasm_encoder::Function::new([]);
        f.instructions().i32_const(ZEROS).end();
        code.function(&f);
        Ok(())
    }
}

pub fn component() -> Result<Vec<u8>> {
    let (resolve, world) = crate::bundle::world("no-filesystem")?;
    let mut module =
        wit_component::dummy_module(&resolve, world, ManglingAndAbi::Legacy(LiftLowerAbi::Sync));
    let mut imported = 0;
    let mut answering = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&module) {
        match payload? {
            wasmparser::Payload::ImportSection(s) => {
                for import in s.into_imports() {
                    if matches!(import?.ty, wasmparser::TypeRef::Func(_)) {
                        imported += 1;
                    }
                }
            }
            wasmparser::Payload::ExportSection(s) => {
                for e in s {
                    let e = e?;
                    if ANSWERING.contains(&e.name) {
                        answering.push(e.index - imported);
                    }
                }
            }
            _ => {}
        }
    }
    anyhow::ensure!(
        answering.len() == ANSWERING.len(),
        "no-filesystem: exports not found"
    );
    let mut out = wasm_encoder::Module::new();
    Answer { answering, next: 0 }
        .parse_core_module(&mut out, wasmparser::Parser::new(0), &module)
        .map_err(|e| anyhow::anyhow!("no-filesystem: {e:?}"))?;
    module = out.finish();
    crate::bundle::component_of(module, &resolve, world)
        .context("encoding the no-filesystem component")
}
