//! A composition written with its bundle image streamed in (what `larder
//! compose` does, never holding the image whole) is byte for byte the one
//! built with the image in memory, at image sizes that change the width of
//! every enclosing size field.

use larder_compose::{
    adapter, adapter_to, compose_with, Build, Bundle, Persist, Preopen, StreamedImage,
};
use std::io::Write;

/// A command app that imports wasi:filesystem and no sockets (a generated
/// module standing in for the app's code).
fn app() -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let deps = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit/deps");
    for file in [
        "io",
        "clocks-0.2",
        "filesystem-0.2",
        "random",
        "sockets",
        "cli",
    ] {
        resolve
            .push_file(format!("{deps}/{file}.wit"))
            .expect("Larder's WASI WIT");
    }
    let pkg = resolve
        .push_str(
            "app.wit",
            "package test:app;
             world app {
               import wasi:filesystem/types@0.2.12;
               import wasi:filesystem/preopens@0.2.12;
               import wasi:cli/stdout@0.2.12;
               export wasi:cli/run@0.2.12;
             }",
        )
        .unwrap();
    let world = resolve.select_world(&[pkg], Some("app")).unwrap();
    let mut module =
        wit_component::dummy_module(&resolve, world, wit_parser::ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .encode()
        .unwrap()
}

/// Deterministic bytes standing in for an image (the bundle component does
/// not read it; the adapter does, at run time).
fn image(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn bundle(image: Vec<u8>) -> Bundle {
    Bundle {
        image,
        preopens: vec![
            Preopen::parse("/").unwrap(),
            Preopen::parse("etc=/etc:ro").unwrap(),
        ],
        read_only: vec!["/etc".into()],
        store: String::new(),
    }
}

/// 0 and 100 bytes keep the segment's length one LEB byte; 200 makes it
/// two, 70,000 three, 3 MiB four, and the enclosing sections follow.
const SIZES: [usize; 5] = [0, 100, 200, 70_000, 3 << 20];

fn streamed(bytes: &[u8]) -> impl FnMut(&mut dyn Write) -> anyhow::Result<()> + '_ {
    // Written in uneven pieces, as an encoder writes file by file.
    move |out| {
        for piece in bytes.chunks(4093) {
            out.write_all(piece)?;
        }
        Ok(())
    }
}

#[test]
fn a_streamed_composition_is_the_composition_built_in_memory() {
    let app = app();
    for len in SIZES {
        let img = image(len);
        for persist in [None, Some(Persist::Host)] {
            let whole = compose_with(&app, "app", &bundle(img.clone()), persist).unwrap();
            let mut out = Vec::new();
            let mut write = streamed(&img);
            larder_compose::compose_to(
                &app,
                "app",
                &bundle(Vec::new()),
                persist,
                StreamedImage {
                    len: len as u64,
                    write: &mut write,
                },
                &mut out,
            )
            .unwrap();
            assert!(
                out == whole,
                "{len}-byte image, {persist:?}: the bytes differ"
            );
        }
    }
}

#[test]
fn a_streamed_adapter_is_the_adapter_built_in_memory() {
    for len in SIZES {
        let img = image(len);
        for build in [Build::Files, Build::Sockets, Build::Edge, Build::Persist] {
            let whole = adapter(&bundle(img.clone()), build).unwrap();
            let mut out = Vec::new();
            let mut write = streamed(&img);
            let image = StreamedImage {
                len: len as u64,
                write: &mut write,
            };
            adapter_to(&bundle(Vec::new()), build, image, &mut out).unwrap();
            assert!(
                out == whole,
                "{len}-byte image, {build:?}: the bytes differ"
            );
            wasmparser::Validator::new()
                .validate_all(&out)
                .expect("a valid component");
        }
    }
}

#[test]
fn an_image_shorter_or_longer_than_planned_is_an_error() {
    let img = image(1000);
    for (planned, what) in [(1001, "shorter"), (999, "longer")] {
        let mut write = streamed(&img);
        let image = StreamedImage {
            len: planned,
            write: &mut write,
        };
        let err = adapter_to(&bundle(Vec::new()), Build::Files, image, &mut Vec::new())
            .expect_err(what)
            .to_string();
        assert!(
            err.contains("1000 bytes, not the") && err.contains(&planned.to_string()),
            "{what}: {err}"
        );
    }
}
