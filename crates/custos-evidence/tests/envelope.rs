//! Data-key envelopes, with OpenSSL as the independent peer: what we wrap, `openssl pkeyutl`
//! unwraps; four-eyes pairs need both keys.

use std::path::Path;

use base64::Engine;
use custos_evidence::envelope::{
    OpeningKey, RecipientCertificates, new_data_key, open_data_key, recipients, seal_data_key,
};
use custos_testkit::pki::{openssl, self_signed};

/// A self-signed certificate and key made by OpenSSL: (cert PEM, key PEM); the files are
/// `<name>.crt` and `<name>.key` in `dir`.
fn identity(dir: &Path, name: &str, algorithm: &str) -> (String, String) {
    let id = self_signed(dir, name, algorithm, &[]);
    (id.cert_pem(), id.key_pem())
}

fn oaep_decrypt(dir: &Path, key: &str, wrapped: &[u8]) -> Vec<u8> {
    std::fs::write(dir.join("wrapped.bin"), wrapped).unwrap();
    openssl(
        dir,
        &[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            key,
            "-in",
            "wrapped.bin",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
    )
}

#[test]
fn any_recipient_opens_and_four_eyes_needs_both_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (alice_crt, alice_key) = identity(d, "alice", "rsa:2048");
    let (bob_crt, bob_key) = identity(d, "bob", "rsa:2048");
    let (carol_crt, carol_key) = identity(d, "carol", "rsa:3072");
    let (_, mallory_key) = identity(d, "mallory", "rsa:2048");

    let data_key = new_data_key();
    let envelope = seal_data_key(
        &data_key,
        &[
            RecipientCertificates {
                certificate_pem: alice_crt,
                four_eyes_pem: None,
            },
            RecipientCertificates {
                certificate_pem: bob_crt,
                // The SPS one-line form is accepted too.
                four_eyes_pem: Some(carol_crt.replace('\n', "\\n")),
            },
        ],
    )
    .unwrap();
    assert_eq!(
        recipients(&envelope).unwrap(),
        vec![
            vec!["CN=alice".to_string()],
            vec!["CN=bob".into(), "CN=carol".into()]
        ]
    );
    let key = |pem: &str| OpeningKey::from_pem(pem).unwrap();

    assert_eq!(
        *open_data_key(&envelope, &[key(&alice_key)]).unwrap(),
        *data_key
    );
    assert_eq!(
        *open_data_key(&envelope, &[key(&carol_key), key(&bob_key)]).unwrap(),
        *data_key
    );
    let one_of_two = open_data_key(&envelope, &[key(&bob_key)]).unwrap_err();
    assert!(one_of_two.to_string().contains("four-eyes"), "{one_of_two}");
    let stranger = open_data_key(&envelope, &[key(&mallory_key)]).unwrap_err();
    assert!(
        stranger.to_string().contains("none of the given"),
        "{stranger}"
    );
    assert!(open_data_key(b"{not json", &[key(&alice_key)]).is_err());

    // OpenSSL unwraps alice's share (the whole key) on its own; bob's share alone is not it.
    let parsed: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    let share = |r: usize| {
        base64::engine::general_purpose::STANDARD
            .decode(
                parsed["recipients"][r]["shares"][0]["wrapped_key"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap()
    };
    assert_eq!(oaep_decrypt(d, "alice.key", &share(0)), data_key.to_vec());
    let bob_share = oaep_decrypt(d, "bob.key", &share(1));
    assert_eq!(bob_share.len(), 32);
    assert_ne!(bob_share, data_key.to_vec());
}

#[test]
fn non_rsa_certificates_are_refused_for_encryption() {
    let dir = tempfile::tempdir().unwrap();
    let (ec_crt, _) = identity(dir.path(), "ec", "ec");
    let err = seal_data_key(
        &new_data_key(),
        &[RecipientCertificates {
            certificate_pem: ec_crt,
            four_eyes_pem: None,
        }],
    );
    assert!(err.is_err());
    assert!(seal_data_key(&new_data_key(), &[]).is_err());
}
