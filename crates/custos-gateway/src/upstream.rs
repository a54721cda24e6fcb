//! The gateway's own SSH connection to the target server.

use std::sync::{Arc, Mutex};

use custos_config::objects::ssh::HostKeyCheck;
use russh::keys::PublicKeyOrCertificate;

use crate::hostkeys::{KnownHosts, Verdict};

pub struct UpstreamHandler {
    pub check: HostKeyCheck,
    pub known_hosts: Arc<KnownHosts>,
    pub host: String,
    pub port: u16,
    /// Why the host key was refused, for the session record and the client.
    pub refusal: Arc<Mutex<Option<String>>>,
}

impl russh::client::Handler for UpstreamHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(
                "the target presented a certificate; only plain host keys are supported".into(),
            );
            return Ok(false);
        };
        let presented = match key.to_openssh() {
            Ok(line) => {
                let mut parts = line.split_whitespace();
                (
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                )
            }
            Err(_) => return Ok(false),
        };
        match self
            .known_hosts
            .check(&self.check, &self.host, self.port, &presented)
        {
            Verdict::Trusted | Verdict::Learned => Ok(true),
            Verdict::Mismatch(why) => {
                tracing::warn!(target = %self.host, port = self.port, reason = %why, "host key refused");
                *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                Ok(false)
            }
        }
    }
}
