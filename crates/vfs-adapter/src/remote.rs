//! The remote build's filesystem: larder-9p's client of a `larder serve`,
//! over a `wasi:sockets` TCP connection this module supplies. The server's
//! address, secret and reply timeout come from the bundle and the app's
//! environment.

use crate::wasi::cli::environment;
use crate::wasi::clocks0_2_12::monotonic_clock;
use crate::wasi::io::poll;
use crate::wasi::io::streams::{InputStream, OutputStream, StreamError};
use crate::wasi::sockets::network::{
    IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use crate::wasi::sockets::{instance_network, ip_name_lookup, tcp, tcp_create_socket};
use larder_9p::client::{Client, Connect, Gone, Transport};
use std::collections::HashMap;

pub use larder_9p::client::{Descriptor, DirStream, FileReader, FileWriter};

/// How long one reply may take before the server counts as gone.
const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// Where the server is, and what to attach with.
struct Target {
    addr: String,
    secret: String,
    timeout_ns: u64,
}

fn target() -> Target {
    let env: HashMap<String, String> = environment::get_environment().into_iter().collect();
    let addr = env
        .get("LARDER_REMOTE")
        .cloned()
        .unwrap_or_else(crate::larder::vfs::bundle::store);
    let secs = env
        .get("LARDER_REMOTE_TIMEOUT")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    Target {
        addr,
        secret: env.get("LARDER_REMOTE_SECRET").cloned().unwrap_or_default(),
        timeout_ns: secs.saturating_mul(1_000_000_000),
    }
}

/// A TCP connection over `wasi:sockets`.
struct Tcp {
    input: InputStream,
    output: OutputStream,
    // Dropped last: the streams are its children.
    _socket: tcp::TcpSocket,
    timeout_ns: u64,
}

impl Connect for Target {
    fn connect(&self) -> Result<Box<dyn Transport>, String> {
        let addr = resolve(&self.addr)?;
        let family = match addr {
            IpSocketAddress::Ipv4(_) => IpAddressFamily::Ipv4,
            IpSocketAddress::Ipv6(_) => IpAddressFamily::Ipv6,
        };
        let net = instance_network::instance_network();
        let socket = tcp_create_socket::create_tcp_socket(family).map_err(|e| format!("{e:?}"))?;
        socket
            .start_connect(&net, addr)
            .map_err(|e| format!("connect: {e:?}"))?;
        let ready = socket.subscribe();
        let (input, output) = loop {
            match socket.finish_connect() {
                Ok(streams) => break streams,
                Err(tcp::ErrorCode::WouldBlock) => {
                    if !wait_for(&ready, self.timeout_ns) {
                        return Err("connect: timed out".into());
                    }
                }
                Err(e) => return Err(format!("connect: {e:?}")),
            }
        };
        drop(ready);
        Ok(Box::new(Tcp {
            input,
            output,
            _socket: socket,
            timeout_ns: self.timeout_ns,
        }))
    }

    fn addr(&self) -> &str {
        &self.addr
    }

    fn secret(&self) -> &str {
        &self.secret
    }
}

impl Tcp {
    /// Blocks until `p` is ready, or the timeout passes (then the server
    /// counts as gone: an app gets `io`, never a hang).
    fn wait_ready(&self, p: &poll::Pollable) -> Result<(), Gone> {
        wait_for(p, self.timeout_ns).then_some(()).ok_or(Gone)
    }
}

impl Transport for Tcp {
    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), Gone> {
        while !bytes.is_empty() {
            let room = match self.output.check_write() {
                Ok(0) => {
                    self.wait_ready(&self.output.subscribe())?;
                    continue;
                }
                Ok(n) => n.min(bytes.len() as u64) as usize,
                Err(_) => return Err(Gone),
            };
            self.output.write(&bytes[..room]).map_err(|_| Gone)?;
            bytes = &bytes[room..];
        }
        self.output.flush().map_err(|_| Gone)?;
        Ok(())
    }

    fn read_into(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<(), Gone> {
        loop {
            match self.input.read(max as u64) {
                Ok(bytes) if bytes.is_empty() => self.wait_ready(&self.input.subscribe())?,
                Ok(bytes) => {
                    buf.extend_from_slice(&bytes);
                    return Ok(());
                }
                Err(StreamError::Closed) | Err(StreamError::LastOperationFailed(_)) => {
                    return Err(Gone)
                }
            }
        }
    }
}

/// Whether `p` became ready within `timeout_ns`.
fn wait_for(p: &poll::Pollable, timeout_ns: u64) -> bool {
    if p.ready() {
        return true;
    }
    let timer = monotonic_clock::subscribe_duration(timeout_ns);
    poll::poll(&[p, &timer]).contains(&0)
}

/// `host:port` (a name or an IP literal, IPv6 in brackets).
fn resolve(addr: &str) -> std::result::Result<IpSocketAddress, String> {
    if addr.is_empty() {
        return Err("no server: compose with --remote HOST:PORT or set LARDER_REMOTE".into());
    }
    if let Ok(a) = addr.parse::<std::net::SocketAddr>() {
        return Ok(socket_address(a.ip(), a.port()));
    }
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{addr}` is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{addr}`: bad port `{port}`"))?;
    let net = instance_network::instance_network();
    let names = ip_name_lookup::resolve_addresses(&net, host)
        .map_err(|e| format!("cannot look up {host}: {e:?}"))?;
    let ready = names.subscribe();
    loop {
        match names.resolve_next_address() {
            Ok(Some(IpAddress::Ipv4(a))) => {
                return Ok(IpSocketAddress::Ipv4(Ipv4SocketAddress {
                    port,
                    address: a,
                }))
            }
            Ok(Some(IpAddress::Ipv6(_))) => continue,
            Ok(None) => return Err(format!("{host} has no IPv4 address")),
            Err(ip_name_lookup::ErrorCode::WouldBlock) => ready.block(),
            Err(e) => return Err(format!("cannot look up {host}: {e:?}")),
        }
    }
}

fn socket_address(ip: std::net::IpAddr, port: u16) -> IpSocketAddress {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port,
                address: (o[0], o[1], o[2], o[3]),
            })
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port,
                flow_info: 0,
                address: (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
                scope_id: 0,
            })
        }
    }
}

thread_local! {
    /// This instance's client; it connects when first used.
    static CLIENT: Client = Client::new(Box::new(target()));
}

/// The preopen: the server's root, as `/`.
pub fn preopens() -> Vec<(Descriptor, String)> {
    vec![(CLIENT.with(Client::root), "/".to_string())]
}
