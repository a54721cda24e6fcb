//! The SMB target against a real Samba `smbd` on loopback: what `read_back` claims to have
//! verified must be exactly what the share holds, file by file (needs root and samba, as the
//! end-to-end tests do).

use std::path::Path;

use custos_config::objects::retention::Target as TargetConfig;
use custos_retention::target::{Digest, Item, Smb, digest};
use custos_testkit::samba::{SMB_DOMAIN, SMB_PASSWORD, SMB_USER, Smbd};

fn target(smbd: &Smbd, scratch: &Path) -> Smb {
    let config: TargetConfig = serde_json::from_value(serde_json::json!({
        "type": "smb",
        "server": {"selection": "ip", "value": smbd.ip.to_string()},
        "protocol_version": "3.1.1",
        "share": "archive/custos",
        "path": "audit trails",
        "domain": SMB_DOMAIN,
        "authentication": {"selection": "password", "username": SMB_USER, "password": SMB_PASSWORD},
    }))
    .unwrap();
    Smb::from_config(&config, smbd.ip.to_string(), scratch).unwrap()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> (Item, Digest) {
    let local = dir.join(name);
    std::fs::write(&local, data).unwrap();
    let remote = format!("2026-11-23/{name}");
    (Item { local, remote }, digest(data).unwrap())
}

#[test]
fn read_back_confirms_each_file_and_a_missing_one_cannot_lend_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let smbd = Smbd::start(dir.path());
    let smb = target(&smbd, &dir.path().join("scratch"));
    let locals = dir.path().join("trails");
    std::fs::create_dir_all(&locals).unwrap();
    // b and c hold the same bytes: if b went missing, c's bytes would arrive where b's were
    // expected. d is larger than one SMB read.
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let files = [
        write(&locals, "a.trail", b"first trail"),
        write(&locals, "b.trail", b"same bytes in two trails"),
        write(&locals, "c.trail", b"same bytes in two trails"),
        write(&locals, "d.trail", &large),
        write(&locals, "e.trail", b""),
    ];
    let items: Vec<Item> = files.iter().map(|(i, _)| i.clone()).collect();
    let wanted: Vec<(String, u64)> = files
        .iter()
        .map(|(i, d)| (i.remote.clone(), d.size))
        .collect();

    let refused = smb.put(&items).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    let on_share = smbd.archive_dir.join("custos/audit trails/2026-11-23");
    assert_eq!(std::fs::read(on_share.join("d.trail")).unwrap(), large);
    let back = smb.read_back(&wanted).unwrap();
    for (item, expected) in &files {
        assert_eq!(back.get(&item.remote), Some(expected), "{}", item.remote);
    }

    // b goes missing; d changes its bytes but not its length; e grows.
    std::fs::remove_file(on_share.join("b.trail")).unwrap();
    let mut changed = large.clone();
    changed[1_234_567] ^= 0xff;
    std::fs::write(on_share.join("d.trail"), &changed).unwrap();
    std::fs::write(on_share.join("e.trail"), b"grown").unwrap();
    let back = smb.read_back(&wanted).unwrap();
    assert_eq!(back.get(&files[0].0.remote), Some(&files[0].1));
    assert_eq!(
        back.get(&files[1].0.remote),
        None,
        "a missing file is missing"
    );
    assert_eq!(back.get(&files[2].0.remote), Some(&files[2].1));
    assert_eq!(
        back.get(&files[3].0.remote),
        Some(&digest(&changed[..]).unwrap())
    );
    assert_eq!(
        back.get(&files[4].0.remote),
        Some(&digest(&b"grown"[..]).unwrap())
    );
}

#[test]
fn names_smbclient_cannot_carry_are_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let smbd = Smbd::start(dir.path());
    let smb = target(&smbd, &dir.path().join("scratch"));
    let (mut item, d) = write(dir.path(), "x.trail", b"data");
    for bad in ["a;rm x/y.trail", "a\"b/y.trail", "a\nb/y.trail"] {
        item.remote = bad.to_string();
        let err = smb.put(std::slice::from_ref(&item)).unwrap_err();
        assert!(err.to_string().contains("cannot be named"), "{err}");
        let err = smb.read_back(&[(bad.to_string(), d.size)]).unwrap_err();
        assert!(err.to_string().contains("cannot be named"), "{err}");
    }
    assert!(Smbd::files(&smbd.archive_dir).is_empty());
}
