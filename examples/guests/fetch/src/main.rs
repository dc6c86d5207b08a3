//! HTTP client and files in one app: fetches URL with
//! `wasi:http/outgoing-handler`, streams the body into FILE with std::fs,
//! then reads FILE back and prints what it got.
//!
//! Usage: fetch URL FILE   (http:// URLs only)

use std::io::{Read, Write};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingRequest, Scheme};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: fetch URL FILE");
        std::process::exit(2);
    };
    let Some(rest) = url.strip_prefix("http://") else {
        eprintln!("fetch: only http:// URLs: {url}");
        std::process::exit(2);
    };
    let (authority, path_q) = rest.split_at(rest.find('/').unwrap_or(rest.len()));

    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).unwrap();
    request.set_scheme(Some(&Scheme::Http)).unwrap();
    request.set_authority(Some(authority)).unwrap();
    request
        .set_path_with_query(Some(if path_q.is_empty() { "/" } else { path_q }))
        .unwrap();
    let future = match outgoing_handler::handle(request, None) {
        Ok(f) => f,
        Err(e) => fail(&format!("request refused: {e:?}")),
    };
    // The pollable comes through Larder's adapter; it must block like the
    // host's own.
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => fail(&format!("request failed: {e:?}")),
        other => fail(&format!("no response: {other:?}")),
    };
    let status = response.status();
    let length = response
        .headers()
        .get("content-length")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());

    let body = response.consume().expect("the body");
    let mut stream = body.stream().expect("the body stream");
    let mut file = std::fs::File::create(&path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    let mut buf = vec![0; 64 << 10];
    let mut received = 0u64;
    loop {
        match Read::read(&mut stream, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                file.write_all(&buf[..n]).expect("write the file");
                received += n as u64;
            }
            Err(e) => fail(&format!("reading the body: {e}")),
        }
    }
    file.sync_all().expect("sync the file");
    drop(file);

    let stored = std::fs::read(&path).expect("read the file back");
    println!(
        "status {status}, content-length {}, received {received}, stored {}, fnv {:016x}",
        length.as_deref().unwrap_or("-"),
        stored.len(),
        fnv1a(&stored)
    );
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn fail(msg: &str) -> ! {
    eprintln!("fetch: {msg}");
    std::process::exit(1);
}
