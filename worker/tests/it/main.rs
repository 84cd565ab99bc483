//! `faceblock-peer` as a user runs it.

use std::process::Command;

fn peer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_faceblock-peer"))
        .args(args)
        .env_remove("FACEBLOCK_STORE")
        .output()
        .unwrap()
}

#[test]
fn keygen_prints_the_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("peer.key");
    let o = peer(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(o.status.success());
    let pk = String::from_utf8(o.stdout).unwrap();
    assert_eq!(pk.trim().len(), 64);
    let loaded = faceblock_schemas::Keypair::load(&key).unwrap();
    assert_eq!(loaded.public().to_hex(), pk.trim());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = peer(&["keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists"), "{err}");
    assert_eq!(
        faceblock_schemas::Keypair::load(&key)
            .unwrap()
            .public()
            .to_hex(),
        pk.trim()
    );
}

#[test]
fn weights_without_a_network_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    assert!(peer(&["keygen", "--out", key.to_str().unwrap()])
        .status
        .success());
    let store = dir.path().join("nothing");
    let o = peer(&[
        "--store",
        store.to_str().unwrap(),
        "weights",
        "--key",
        key.to_str().unwrap(),
        "--set",
        "1=1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("faceblock init"), "{err}");
    let o = peer(&[
        "weights",
        "--key",
        key.to_str().unwrap(),
        "--set",
        "1=1",
        "--source",
        "fisher",
    ]);
    assert_eq!(o.status.code(), Some(2), "--set and --source conflict");
}
