//! A 9P2000.L server on one fs-core filesystem (tokio).
//!
//! Each connection is one task that reads a request, answers it and reads
//! the next; replies are written in batches while requests are waiting in
//! the socket, so a pipelining client pays one round trip per batch. A
//! request that cannot be decoded (bad size, truncated, trailing bytes,
//! too many walk names) closes that connection only, with a log line.
//!
//! Standard fids are paths from the root, resolved by fs-core on each use
//! (as in diod or QEMU's local backend): fs-core follows symlinks inside
//! a path and never the last component, as Linux's `*at(..., NOFOLLOW)`
//! does. Opened fids hold an fs-core descriptor, so I/O follows the inode
//! across renames and unlinks.

mod connection;
mod convert;
mod extension;
mod fid;
mod standard;

use crate::wire;
use crate::wire::DecodeError;
use connection::Session;
use fs_core::{ErrorCode, Fs};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// Limits and access rules for every connection.
#[derive(Clone, Debug)]
pub struct Config {
    /// The largest msize a client may negotiate.
    pub max_msize: u32,
    /// Fids one connection may hold at once.
    pub max_fids: usize,
    /// If set, `Tattach` must carry it as `aname`.
    pub secret: Option<String>,
    /// Handle requests where blocking is allowed (the filesystem has a
    /// store, so fsync and close may wait for the network).
    pub may_block: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_msize: 4 << 20,
            max_fids: 4096,
            secret: None,
            may_block: false,
        }
    }
}

/// The smallest msize accepted: room for a header and a useful payload.
const MIN_MSIZE: u32 = 4096;
/// `f_type` Linux reports for v9fs.
const V9FS_MAGIC: u32 = 0x0102_1997;
const EILSEQ: u32 = 84;

pub struct Server {
    fs: Fs,
    config: Config,
}

impl Server {
    pub fn new(fs: Fs, config: Config) -> Arc<Server> {
        Arc::new(Server { fs, config })
    }

    /// Accepts connections until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (sock, peer) = listener.accept().await?;
            let me = self.clone();
            tokio::spawn(async move { me.connection(sock, peer).await });
        }
    }

    async fn connection(&self, sock: TcpStream, peer: SocketAddr) {
        let _ = sock.set_nodelay(true);
        tracing::debug!(%peer, "connected");
        match self.converse(sock).await {
            Ok(()) => tracing::debug!(%peer, "disconnected"),
            Err(ConnError::Io(e)) => tracing::debug!(%peer, "connection ended: {e}"),
            Err(ConnError::Protocol(e)) => {
                tracing::warn!(%peer, "closing the connection: malformed message: {e}")
            }
        }
    }

    async fn converse(&self, sock: TcpStream) -> Result<(), ConnError> {
        let (rd, wr) = sock.into_split();
        let mut rd = BufReader::with_capacity(256 << 10, rd);
        let mut wr = BufWriter::with_capacity(256 << 10, wr);
        let mut session = Session::new(self)?;
        let mut frame = Vec::new();
        let mut out = Vec::new();
        loop {
            let mut head = [0u8; 4];
            match rd.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    wr.flush().await?;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
            let size = wire::frame_size(head, session.msize)?;
            frame.clear();
            frame.extend_from_slice(&head);
            frame.resize(size, 0);
            rd.read_exact(&mut frame[4..]).await?;
            let (tag, reply) = if self.config.may_block {
                tokio::task::block_in_place(|| session.handle(&frame))?
            } else {
                session.handle(&frame)?
            };
            out.clear();
            reply.encode(tag, &mut out);
            wr.write_all(&out).await?;
            // Flush once nothing more is waiting: a pipelined batch gets
            // its replies in one write.
            if rd.buffer().is_empty() {
                wr.flush().await?;
            }
        }
    }
}

enum ConnError {
    Io(std::io::Error),
    Protocol(DecodeError),
}

impl From<std::io::Error> for ConnError {
    fn from(e: std::io::Error) -> Self {
        ConnError::Io(e)
    }
}

impl From<DecodeError> for ConnError {
    fn from(e: DecodeError) -> Self {
        ConnError::Protocol(e)
    }
}

impl From<fs_core::ErrorCode> for ConnError {
    fn from(e: fs_core::ErrorCode) -> Self {
        ConnError::Io(e.into())
    }
}

pub(crate) type Errno = u32;
pub(crate) type Res<T> = Result<T, Errno>;

pub(crate) fn errno(e: ErrorCode) -> Errno {
    e.errno() as u32
}
