//! Asking the target, without a signature, whether it would accept a public key the client
//! offers, so the gateway accepts only keys the target would accept too.

use custos_sessions::Verdict;
use russh::client;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PublicKey};
use russh::server::{Auth, PublicKeyOffer};

use super::key_login::PUBLICKEY;
use super::{ClientHandler, Upstream};
use crate::upstream::UpstreamHandler;

/// A public key the target would accept (it answered `PK_OK`), with the connection that asked.
pub(super) struct Probe {
    pub(super) login: String,
    pub(super) upstream: Upstream,
    pub(super) accepted: Vec<PublicKey>,
}

/// Why [`ProbeOnly`] stopped.
enum ProbeStop {
    /// The target would accept the key: it asked for the signature.
    Accepted,
    Gone,
}

impl From<russh::SendError> for ProbeStop {
    fn from(_: russh::SendError) -> Self {
        ProbeStop::Gone
    }
}

/// A signer that never signs. russh first asks the target whether it would accept a key, and
/// wants a signature only after the target said yes (`PK_OK`): this signer's refusal then ends
/// the attempt (russh leaves the connection usable), and the answer is known without a key.
struct ProbeOnly;

impl russh::Signer for ProbeOnly {
    type Error = ProbeStop;

    async fn auth_sign(
        &mut self,
        _key: &AgentIdentity,
        _hash_alg: Option<HashAlg>,
        _to_sign: Vec<u8>,
    ) -> Result<Vec<u8>, ProbeStop> {
        Err(ProbeStop::Accepted)
    }
}

/// The signature hash for an RSA key: the best the target announces (SHA-1 if none).
pub(super) async fn rsa_hash(
    handle: &client::Handle<UpstreamHandler>,
    key: &PublicKey,
) -> Option<HashAlg> {
    if !matches!(key.algorithm(), russh::keys::Algorithm::Rsa { .. }) {
        return None;
    }
    handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

/// Whether the target would let `upstream`'s user in with `key`.
async fn target_accepts(upstream: &mut Upstream, key: &PublicKey) -> Result<bool, String> {
    let hash = rsa_hash(&upstream.handle, key).await;
    let user = upstream.target.username.clone();
    match upstream
        .handle
        .authenticate_publickey_with(user, key.clone(), hash, &mut ProbeOnly)
        .await
    {
        Err(ProbeStop::Accepted) => Ok(true),
        Ok(client::AuthResult::Failure { .. }) => Ok(false),
        Ok(client::AuthResult::Success) => {
            Err("the target let the user in without a signature; refusing to use it".into())
        }
        Err(ProbeStop::Gone) => Err("the connection to the target was lost".into()),
    }
}

impl ClientHandler {
    /// The connection that asks the target about `user`'s keys: the one from an earlier offer
    /// of the same user, or a new one.
    async fn probe_for(&mut self, user: &str) -> Result<Probe, (Verdict, String)> {
        if let Some(probe) = self.probe.take().filter(|p| p.login == user) {
            return Ok(probe);
        }
        Ok(Probe {
            login: user.to_string(),
            upstream: self.relay.open_upstream(user).await?,
            accepted: Vec::new(),
        })
    }

    /// A public key is accepted only if the target would accept it too (asked without a
    /// signature, see [`ProbeOnly`]): a client whose key the target does not know goes on to
    /// its other keys or methods, as it would connecting directly.
    pub(super) async fn public_key_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, russh::Error> {
        if self.logged_in() {
            return Ok(Auth::reject());
        }
        let key = offer.public_key;
        let known = |p: &Probe| {
            p.login == user && p.accepted.iter().any(|k| k.key_data() == key.key_data())
        };
        // russh asks again for the signed request that follows the client's query.
        if self.probe.as_ref().is_some_and(known) {
            return Ok(Auth::Accept);
        }
        let mut probe = match self.probe_for(user).await {
            Ok(probe) => probe,
            Err((verdict, why)) => {
                self.relay.note_refusal(user, PUBLICKEY, verdict, why);
                return Ok(Auth::reject());
            }
        };
        match target_accepts(&mut probe.upstream, key).await {
            Ok(true) => {
                probe.accepted.push(key.clone());
                self.probe = Some(probe);
                Ok(Auth::Accept)
            }
            Ok(false) => {
                let why = format!(
                    "the target does not accept the public key {} of {}",
                    key.fingerprint(HashAlg::Sha256),
                    probe.upstream.target.username
                );
                self.relay
                    .note_refusal(user, PUBLICKEY, Verdict::AuthFail, why);
                self.probe = Some(probe);
                Ok(Auth::reject())
            }
            Err(why) => {
                self.relay.note_refusal(user, PUBLICKEY, Verdict::Fail, why);
                Ok(Auth::reject())
            }
        }
    }
}
