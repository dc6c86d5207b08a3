//! `wasi:sockets`, passed through to the host (the `net` build). Sockets
//! hand out `wasi:io` streams and pollables, which must be the adapter's
//! (see io.rs); everything else is the host's, wrapped and unwrapped.

use crate::exports::wasi::io::poll::Pollable;
use crate::exports::wasi::io::streams::{InputStream, OutputStream};
use crate::exports::wasi::sockets::{
    instance_network, ip_name_lookup as lookup_exp, network as net_exp, tcp as tcp_exp,
    tcp_create_socket, udp as udp_exp, udp_create_socket,
};
use crate::io::{wrap_pollable, Input, Output};
use crate::wasi::sockets::{
    instance_network as host_instance, ip_name_lookup as host_lookup, network as host_net,
    tcp as host_tcp, tcp_create_socket as host_tcp_create, udp as host_udp,
    udp_create_socket as host_udp_create,
};
use crate::Adapter;

pub struct Network(host_net::Network);
pub struct TcpSocket(host_tcp::TcpSocket);
pub struct UdpSocket(host_udp::UdpSocket);
pub struct IncomingDatagrams(host_udp::IncomingDatagramStream);
pub struct OutgoingDatagrams(host_udp::OutgoingDatagramStream);
pub struct ResolveStream(host_lookup::ResolveAddressStream);

type Result<T> = std::result::Result<T, net_exp::ErrorCode>;

// The import and export sides are the same WIT, generated twice: enums
// share discriminants, records and variants are copied field by field.

fn code(e: host_net::ErrorCode) -> net_exp::ErrorCode {
    // SAFETY: both are `wasi:sockets/network@0.2.12.error-code`, generated
    // with the same discriminants.
    unsafe { net_exp::ErrorCode::_lift(e as u8) }
}

fn family(f: host_net::IpAddressFamily) -> net_exp::IpAddressFamily {
    match f {
        host_net::IpAddressFamily::Ipv4 => net_exp::IpAddressFamily::Ipv4,
        host_net::IpAddressFamily::Ipv6 => net_exp::IpAddressFamily::Ipv6,
    }
}

fn family_in(f: net_exp::IpAddressFamily) -> host_net::IpAddressFamily {
    match f {
        net_exp::IpAddressFamily::Ipv4 => host_net::IpAddressFamily::Ipv4,
        net_exp::IpAddressFamily::Ipv6 => host_net::IpAddressFamily::Ipv6,
    }
}

fn addr(a: host_net::IpAddress) -> net_exp::IpAddress {
    match a {
        host_net::IpAddress::Ipv4(a) => net_exp::IpAddress::Ipv4(a),
        host_net::IpAddress::Ipv6(a) => net_exp::IpAddress::Ipv6(a),
    }
}

fn sock_addr(a: host_net::IpSocketAddress) -> net_exp::IpSocketAddress {
    match a {
        host_net::IpSocketAddress::Ipv4(a) => {
            net_exp::IpSocketAddress::Ipv4(net_exp::Ipv4SocketAddress {
                port: a.port,
                address: a.address,
            })
        }
        host_net::IpSocketAddress::Ipv6(a) => {
            net_exp::IpSocketAddress::Ipv6(net_exp::Ipv6SocketAddress {
                port: a.port,
                flow_info: a.flow_info,
                address: a.address,
                scope_id: a.scope_id,
            })
        }
    }
}

fn sock_addr_in(a: net_exp::IpSocketAddress) -> host_net::IpSocketAddress {
    match a {
        net_exp::IpSocketAddress::Ipv4(a) => {
            host_net::IpSocketAddress::Ipv4(host_net::Ipv4SocketAddress {
                port: a.port,
                address: a.address,
            })
        }
        net_exp::IpSocketAddress::Ipv6(a) => {
            host_net::IpSocketAddress::Ipv6(host_net::Ipv6SocketAddress {
                port: a.port,
                flow_info: a.flow_info,
                address: a.address,
                scope_id: a.scope_id,
            })
        }
    }
}

fn network(n: net_exp::NetworkBorrow<'_>) -> &host_net::Network {
    &n.get::<Network>().0
}

fn input(s: host_tcp::InputStream) -> InputStream {
    InputStream::new(Input::Host(s))
}

fn output(s: host_tcp::OutputStream) -> OutputStream {
    OutputStream::new(Output::Host(s))
}

/// What TCP and UDP sockets share, method for method (the host types
/// differ, the WIT signatures do not).
macro_rules! socket_common {
    () => {
        fn start_bind(
            &self,
            net: net_exp::NetworkBorrow<'_>,
            local: net_exp::IpSocketAddress,
        ) -> Result<()> {
            self.0
                .start_bind(network(net), sock_addr_in(local))
                .map_err(code)
        }
        fn finish_bind(&self) -> Result<()> {
            self.0.finish_bind().map_err(code)
        }
        fn local_address(&self) -> Result<net_exp::IpSocketAddress> {
            self.0.local_address().map(sock_addr).map_err(code)
        }
        fn remote_address(&self) -> Result<net_exp::IpSocketAddress> {
            self.0.remote_address().map(sock_addr).map_err(code)
        }
        fn address_family(&self) -> net_exp::IpAddressFamily {
            family(self.0.address_family())
        }
        fn receive_buffer_size(&self) -> Result<u64> {
            self.0.receive_buffer_size().map_err(code)
        }
        fn set_receive_buffer_size(&self, v: u64) -> Result<()> {
            self.0.set_receive_buffer_size(v).map_err(code)
        }
        fn send_buffer_size(&self) -> Result<u64> {
            self.0.send_buffer_size().map_err(code)
        }
        fn set_send_buffer_size(&self, v: u64) -> Result<()> {
            self.0.set_send_buffer_size(v).map_err(code)
        }
        fn subscribe(&self) -> Pollable {
            wrap_pollable(self.0.subscribe())
        }
    };
}

impl net_exp::Guest for Adapter {
    type Network = Network;
}

impl net_exp::GuestNetwork for Network {}

impl instance_network::Guest for Adapter {
    fn instance_network() -> net_exp::Network {
        net_exp::Network::new(Network(host_instance::instance_network()))
    }
}

impl lookup_exp::Guest for Adapter {
    type ResolveAddressStream = ResolveStream;

    fn resolve_addresses(
        net: net_exp::NetworkBorrow<'_>,
        name: String,
    ) -> Result<lookup_exp::ResolveAddressStream> {
        let s = host_lookup::resolve_addresses(network(net), &name).map_err(code)?;
        Ok(lookup_exp::ResolveAddressStream::new(ResolveStream(s)))
    }
}

impl lookup_exp::GuestResolveAddressStream for ResolveStream {
    fn resolve_next_address(&self) -> Result<Option<net_exp::IpAddress>> {
        Ok(self.0.resolve_next_address().map_err(code)?.map(addr))
    }
    fn subscribe(&self) -> Pollable {
        wrap_pollable(self.0.subscribe())
    }
}

impl tcp_create_socket::Guest for Adapter {
    fn create_tcp_socket(f: net_exp::IpAddressFamily) -> Result<tcp_exp::TcpSocket> {
        let s = host_tcp_create::create_tcp_socket(family_in(f)).map_err(code)?;
        Ok(tcp_exp::TcpSocket::new(TcpSocket(s)))
    }
}

impl tcp_exp::Guest for Adapter {
    type TcpSocket = TcpSocket;
}

impl tcp_exp::GuestTcpSocket for TcpSocket {
    socket_common!();
    fn start_connect(
        &self,
        net: net_exp::NetworkBorrow<'_>,
        remote: net_exp::IpSocketAddress,
    ) -> Result<()> {
        self.0
            .start_connect(network(net), sock_addr_in(remote))
            .map_err(code)
    }
    fn finish_connect(&self) -> Result<(InputStream, OutputStream)> {
        let (i, o) = self.0.finish_connect().map_err(code)?;
        Ok((input(i), output(o)))
    }
    fn start_listen(&self) -> Result<()> {
        self.0.start_listen().map_err(code)
    }
    fn finish_listen(&self) -> Result<()> {
        self.0.finish_listen().map_err(code)
    }
    fn accept(&self) -> Result<(tcp_exp::TcpSocket, InputStream, OutputStream)> {
        let (s, i, o) = self.0.accept().map_err(code)?;
        Ok((tcp_exp::TcpSocket::new(TcpSocket(s)), input(i), output(o)))
    }
    fn is_listening(&self) -> bool {
        self.0.is_listening()
    }
    fn set_listen_backlog_size(&self, v: u64) -> Result<()> {
        self.0.set_listen_backlog_size(v).map_err(code)
    }
    fn keep_alive_enabled(&self) -> Result<bool> {
        self.0.keep_alive_enabled().map_err(code)
    }
    fn set_keep_alive_enabled(&self, v: bool) -> Result<()> {
        self.0.set_keep_alive_enabled(v).map_err(code)
    }
    fn keep_alive_idle_time(&self) -> Result<u64> {
        self.0.keep_alive_idle_time().map_err(code)
    }
    fn set_keep_alive_idle_time(&self, v: u64) -> Result<()> {
        self.0.set_keep_alive_idle_time(v).map_err(code)
    }
    fn keep_alive_interval(&self) -> Result<u64> {
        self.0.keep_alive_interval().map_err(code)
    }
    fn set_keep_alive_interval(&self, v: u64) -> Result<()> {
        self.0.set_keep_alive_interval(v).map_err(code)
    }
    fn keep_alive_count(&self) -> Result<u32> {
        self.0.keep_alive_count().map_err(code)
    }
    fn set_keep_alive_count(&self, v: u32) -> Result<()> {
        self.0.set_keep_alive_count(v).map_err(code)
    }
    fn hop_limit(&self) -> Result<u8> {
        self.0.hop_limit().map_err(code)
    }
    fn set_hop_limit(&self, v: u8) -> Result<()> {
        self.0.set_hop_limit(v).map_err(code)
    }
    fn shutdown(&self, how: tcp_exp::ShutdownType) -> Result<()> {
        let how = match how {
            tcp_exp::ShutdownType::Receive => host_tcp::ShutdownType::Receive,
            tcp_exp::ShutdownType::Send => host_tcp::ShutdownType::Send,
            tcp_exp::ShutdownType::Both => host_tcp::ShutdownType::Both,
        };
        self.0.shutdown(how).map_err(code)
    }
}

impl udp_create_socket::Guest for Adapter {
    fn create_udp_socket(f: net_exp::IpAddressFamily) -> Result<udp_exp::UdpSocket> {
        let s = host_udp_create::create_udp_socket(family_in(f)).map_err(code)?;
        Ok(udp_exp::UdpSocket::new(UdpSocket(s)))
    }
}

impl udp_exp::Guest for Adapter {
    type UdpSocket = UdpSocket;
    type IncomingDatagramStream = IncomingDatagrams;
    type OutgoingDatagramStream = OutgoingDatagrams;
}

impl udp_exp::GuestUdpSocket for UdpSocket {
    socket_common!();
    fn stream(
        &self,
        remote: Option<net_exp::IpSocketAddress>,
    ) -> Result<(
        udp_exp::IncomingDatagramStream,
        udp_exp::OutgoingDatagramStream,
    )> {
        let (i, o) = self.0.stream(remote.map(sock_addr_in)).map_err(code)?;
        Ok((
            udp_exp::IncomingDatagramStream::new(IncomingDatagrams(i)),
            udp_exp::OutgoingDatagramStream::new(OutgoingDatagrams(o)),
        ))
    }
    fn unicast_hop_limit(&self) -> Result<u8> {
        self.0.unicast_hop_limit().map_err(code)
    }
    fn set_unicast_hop_limit(&self, v: u8) -> Result<()> {
        self.0.set_unicast_hop_limit(v).map_err(code)
    }
}

impl udp_exp::GuestIncomingDatagramStream for IncomingDatagrams {
    fn receive(&self, max: u64) -> Result<Vec<udp_exp::IncomingDatagram>> {
        let got = self.0.receive(max).map_err(code)?;
        Ok(got
            .into_iter()
            .map(|d| udp_exp::IncomingDatagram {
                data: d.data,
                remote_address: sock_addr(d.remote_address),
            })
            .collect())
    }
    fn subscribe(&self) -> Pollable {
        wrap_pollable(self.0.subscribe())
    }
}

impl udp_exp::GuestOutgoingDatagramStream for OutgoingDatagrams {
    fn check_send(&self) -> Result<u64> {
        self.0.check_send().map_err(code)
    }
    fn send(&self, datagrams: Vec<udp_exp::OutgoingDatagram>) -> Result<u64> {
        let out: Vec<host_udp::OutgoingDatagram> = datagrams
            .into_iter()
            .map(|d| host_udp::OutgoingDatagram {
                data: d.data,
                remote_address: d.remote_address.map(sock_addr_in),
            })
            .collect();
        self.0.send(&out).map_err(code)
    }
    fn subscribe(&self) -> Pollable {
        wrap_pollable(self.0.subscribe())
    }
}
