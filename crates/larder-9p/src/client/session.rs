//! One connection to a server: framing, tags, and replies that arrive out
//! of order, over whatever [`Transport`] the embedder supplies.

use super::{Gone, Transport};
use crate::wire::{self, R, T};
use std::collections::{HashMap, HashSet};

/// What the client asks for; the server may grant less.
pub(super) const MSIZE: u32 = 4 << 20;
/// The fid every session attaches the root to.
pub(super) const ROOT_FID: u32 = 0;

pub(super) struct Session {
    transport: Box<dyn Transport>,
    pub msize: u32,
    next_tag: u16,
    inbuf: Vec<u8>,
    /// Replies that came before the one being waited for.
    early: HashMap<u16, R>,
    /// Tags whose replies nobody waits for (clunks of dropped handles).
    pub discard: HashSet<u16>,
}

impl Session {
    /// Negotiates the version and attaches the root with `secret`.
    pub fn start(transport: Box<dyn Transport>, secret: &str) -> Result<Session, String> {
        let mut s = Session {
            transport,
            msize: MSIZE,
            next_tag: 0,
            inbuf: Vec::new(),
            early: HashMap::new(),
            discard: HashSet::new(),
        };
        let gone = |_| "the server closed the connection".to_string();
        let reply = s
            .call(T::Version {
                msize: MSIZE,
                version: wire::VERSION.into(),
            })
            .map_err(gone)?;
        match reply {
            R::Version { msize, version } if version == wire::VERSION && msize >= 8192 => {
                s.msize = msize.min(MSIZE)
            }
            other => return Err(format!("the server does not speak 9P2000.L: {other:?}")),
        }
        match s
            .call(T::Attach {
                fid: ROOT_FID,
                afid: wire::NOFID,
                uname: String::new(),
                aname: secret.to_string(),
                n_uname: wire::NOFID,
            })
            .map_err(gone)?
        {
            R::Attach { .. } => Ok(s),
            R::Lerror { ecode } => Err(format!("attach refused: {}", super::errno(ecode).name())),
            other => Err(format!("unexpected answer to attach: {other:?}")),
        }
    }

    /// Sends `t` without waiting; the reply is collected by `wait`.
    pub fn send(&mut self, t: &T) -> Result<u16, Gone> {
        let tag = loop {
            let tag = self.next_tag;
            self.next_tag = self.next_tag.wrapping_add(1);
            if tag != wire::NOTAG && !self.early.contains_key(&tag) && !self.discard.contains(&tag)
            {
                break tag;
            }
        };
        let mut frame = Vec::new();
        t.encode(tag, &mut frame);
        self.transport.write_all(&frame)?;
        Ok(tag)
    }

    /// The reply to `tag`.
    pub fn wait(&mut self, tag: u16) -> Result<R, Gone> {
        if let Some(r) = self.early.remove(&tag) {
            return Ok(r);
        }
        loop {
            let (got, r) = self.next_reply()?;
            if got == tag {
                return Ok(r);
            }
            if !self.discard.remove(&got) {
                self.early.insert(got, r);
            }
        }
    }

    fn next_reply(&mut self) -> Result<(u16, R), Gone> {
        self.fill(4)?;
        let size = wire::frame_size(self.inbuf[..4].try_into().expect("4 bytes"), self.msize)
            .map_err(|_| Gone)?;
        self.fill(size)?;
        let decoded = wire::decode_r(&self.inbuf[..size]).map_err(|_| Gone);
        self.inbuf.drain(..size);
        decoded
    }

    fn fill(&mut self, want: usize) -> Result<(), Gone> {
        while self.inbuf.len() < want {
            let need = (want - self.inbuf.len()).max(64 << 10);
            self.transport.read_into(&mut self.inbuf, need)?;
        }
        Ok(())
    }

    pub fn call(&mut self, t: T) -> Result<R, Gone> {
        let tag = self.send(&t)?;
        self.wait(tag)
    }
}
