//! `Pkcs11Key` against Debian's SoftHSM2: keys made in a throwaway token sign what their
//! public keys verify (ring, through signet-pkix), OpenSC's `pkcs11-tool` sees them as
//! sensitive and never extractable, and the key survives a logout and its token going away
//! and coming back.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` when the module is initialised, and a test cannot set an
//! environment variable safely, so each test runs its body in a child process (this same
//! test binary, running just that test) given its token's configuration.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use signet_pkcs11::{
    KeyKind, Module, Pin, Pkcs11Error, Pkcs11Key, Pkcs11Uri, TOKEN_CHECK_INTERVAL,
    generate_key_pair,
};
use signet_pkix::{SigningError, SigningKey};
use signet_testkit::softhsm::{self, SoftHsm, USER_PIN};

const TOKEN: &str = "signet-test";
const CHILD: &str = "SIGNET_SOFTHSM_TEST_DIR";

/// Run `body` in a child process that sees a fresh token labelled [`TOKEN`]; `body` gets the
/// directory holding the configuration and the tokens.
fn in_token(test: &str, body: impl FnOnce(PathBuf)) {
    if let Some(dir) = std::env::var_os(CHILD) {
        body(PathBuf::from(dir));
        return;
    }
    let hsm = SoftHsm::with_token(TOKEN);
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .envs(hsm.env())
        .env(CHILD, hsm.conf().parent().unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child test {test} failed after {:?}:\n{stdout}\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn module() -> Arc<Module> {
    Module::open(&softhsm::module_path()).unwrap()
}

fn pin() -> Pin {
    Pin::new(USER_PIN).unwrap()
}

fn token() -> Pkcs11Uri {
    Pkcs11Uri {
        token: Some(TOKEN.into()),
        object: Some("unused".into()),
        ..Pkcs11Uri::default()
    }
}

fn verifies(key: &dyn SigningKey, message: &[u8], signature: &[u8]) -> bool {
    signet_pkix::cert::signature_verifies(
        &key.spki_der(),
        key.algorithm().algorithm_identifier(),
        message,
        signature,
    )
}

/// `pkcs11-tool` run by a test body (the child already has SOFTHSM2_CONF).
fn pkcs11_tool(args: &[&str]) -> String {
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(softhsm::module_path())
        .args(["--login", "--pin", USER_PIN])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn generated_keys_of_every_kind_sign_and_stay_in_the_token() {
    in_token(
        "generated_keys_of_every_kind_sign_and_stay_in_the_token",
        |_| {
            let module = module();
            for (kind, label) in [
                (KeyKind::P256, "k-p256"),
                (KeyKind::P384, "k-p384"),
                (KeyKind::Rsa2048, "k-rsa2048"),
                (KeyKind::Rsa3072, "k-rsa3072"),
                (KeyKind::Rsa4096, "k-rsa4096"),
            ] {
                let uri = generate_key_pair(&module, &pin(), &token(), label, kind).unwrap();
                assert_eq!(uri.object.as_deref(), Some(label));
                // The URI as written in a configuration names the key.
                let uri: Pkcs11Uri = uri.to_string().parse().unwrap();
                let key = Pkcs11Key::open(module.clone(), pin(), uri, 2).unwrap();
                for message in [&b"tbs"[..], &[0u8; 5000][..]] {
                    let signature = key.sign(message).unwrap();
                    assert!(verifies(&key, message, &signature), "{kind:?}");
                    assert!(!verifies(&key, b"other", &signature), "{kind:?}");
                }
                // Making a second key under the same label is refused, not done.
                assert!(matches!(
                    generate_key_pair(&module, &pin(), &token(), label, kind),
                    Err(Pkcs11Error::KeyExists(_))
                ));
            }
            // OpenSC's view of the private keys: sensitive, never extractable.
            let listing = pkcs11_tool(&["--list-objects", "--type", "privkey"]);
            let access: Vec<&str> = listing
                .lines()
                .filter(|l| l.trim_start().starts_with("Access:"))
                .collect();
            assert_eq!(access.len(), 5, "{listing}");
            for line in access {
                assert!(line.contains("sensitive"), "{line}");
                assert!(line.contains("never extractable"), "{line}");
                let flags = line.trim_start().trim_start_matches("Access:").trim();
                assert!(!flags.split(", ").any(|f| f == "extractable"), "{line}");
            }
        },
    );
}

#[test]
fn a_wrong_pin_or_a_missing_key_is_a_clear_error() {
    in_token("a_wrong_pin_or_a_missing_key_is_a_clear_error", |_| {
        let module = module();
        let uri = generate_key_pair(&module, &pin(), &token(), "k", KeyKind::P256).unwrap();
        let wrong = Pkcs11Key::open(module.clone(), Pin::new("11111111").unwrap(), uri, 1);
        match wrong {
            Err(e @ Pkcs11Error::Login { .. }) => {
                assert!(!e.to_string().contains("11111111"), "{e}");
                assert!(e.to_string().contains("PinIncorrect"), "{e}");
            }
            other => panic!("expected a login error, got {other:?}"),
        }
        let missing: Pkcs11Uri = format!("pkcs11:token={TOKEN};object=nothing")
            .parse()
            .unwrap();
        assert!(matches!(
            Pkcs11Key::open(module.clone(), pin(), missing, 1),
            Err(Pkcs11Error::KeyNotFound(_))
        ));
        let no_token: Pkcs11Uri = "pkcs11:token=elsewhere;object=k".parse().unwrap();
        assert!(matches!(
            Pkcs11Key::open(module, pin(), no_token, 1),
            Err(Pkcs11Error::TokenNotFound(_))
        ));
        assert_eq!(format!("{:?}", pin()), "Pin(<redacted>)");
    });
}

#[test]
fn many_threads_share_a_bounded_session_pool() {
    in_token("many_threads_share_a_bounded_session_pool", |_| {
        let module = module();
        let uri = generate_key_pair(&module, &pin(), &token(), "k", KeyKind::P256).unwrap();
        let key = Arc::new(Pkcs11Key::open(module, pin(), uri, 3).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let key = key.clone();
                std::thread::spawn(move || {
                    for i in 0..40 {
                        let message = format!("thread {t} message {i}");
                        let signature = key.sign(message.as_bytes()).unwrap();
                        assert!(verifies(&*key, message.as_bytes(), &signature));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn signing_logs_in_again_after_a_logout() {
    in_token("signing_logs_in_again_after_a_logout", |_| {
        let module = module();
        let uri = generate_key_pair(&module, &pin(), &token(), "k", KeyKind::P384).unwrap();
        let key = Pkcs11Key::open(module, pin(), uri, 2).unwrap();
        assert!(verifies(&key, b"before", &key.sign(b"before").unwrap()));
        // Another part of the process logs the application out of the token (a login is
        // shared by all of an application's sessions).
        let ctx = cryptoki::context::Pkcs11::new(softhsm::module_path()).unwrap();
        let slot = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == TOKEN)
            .unwrap();
        let session = ctx.open_ro_session_no_drop(slot).unwrap();
        session.logout().unwrap();
        let _ = session.close();
        assert!(verifies(&key, b"after", &key.sign(b"after").unwrap()));
    });
}

#[test]
fn a_token_that_goes_away_is_unavailable_then_comes_back() {
    in_token(
        "a_token_that_goes_away_is_unavailable_then_comes_back",
        |dir| {
            let module = module();
            let uri = generate_key_pair(&module, &pin(), &token(), "k", KeyKind::P256).unwrap();
            let key = Pkcs11Key::open(module, pin(), uri, 2).unwrap();
            assert!(verifies(&key, b"before", &key.sign(b"before").unwrap()));
            // The token's store disappears (a removed token, an unmounted volume).
            let tokens = dir.join("tokens");
            let away = dir.join("tokens-away");
            std::fs::rename(&tokens, &away).unwrap();
            // Signatures go through the key's session copies, which the token object is
            // checked behind at least every TOKEN_CHECK_INTERVAL: from then on, refused.
            std::thread::sleep(TOKEN_CHECK_INTERVAL);
            let mut refused = 0;
            for _ in 0..5 {
                match key.sign(b"while away") {
                    Err(SigningError::KeyUnavailable(why)) => {
                        assert!(!why.contains(USER_PIN));
                        refused += 1;
                    }
                    other => panic!("expected KeyUnavailable, got {other:?}"),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert_eq!(refused, 5);
            // It comes back: the key signs again by itself.
            std::fs::rename(&away, &tokens).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match key.sign(b"after") {
                    Ok(signature) => {
                        assert!(verifies(&key, b"after", &signature));
                        break;
                    }
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => panic!("the key did not come back: {e}"),
                }
            }
        },
    );
}

/// On a multi-threaded runtime's workers (where `signet serve` signs), a fast module signs
/// inline when a session is idle and under `block_in_place` otherwise; either way every
/// signature verifies, a logout is recovered from, and a token that goes away is
/// `KeyUnavailable` until it comes back, with the worker never stuck.
#[test]
fn runtime_workers_sign_inline_and_recover() {
    in_token("runtime_workers_sign_inline_and_recover", |dir| {
        let module = module();
        let uri = generate_key_pair(&module, &pin(), &token(), "k", KeyKind::P256).unwrap();
        let key = Arc::new(Pkcs11Key::open(module, pin(), uri, 2).unwrap());
        // The self-test signature was timed.
        assert!(key.smoothed_sign_time().is_some());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        // More concurrent signers than sessions: some find none idle and wait for one.
        let sign_many = |key: &Arc<Pkcs11Key>, tag: &'static str| {
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let key = Arc::clone(key);
                    rt.spawn(async move {
                        for i in 0..25 {
                            let message = format!("{tag} {t} {i}");
                            let signature = key.sign(message.as_bytes()).unwrap();
                            assert!(verifies(&key, message.as_bytes(), &signature));
                        }
                    })
                })
                .collect();
            rt.block_on(async {
                for task in tasks {
                    task.await.unwrap();
                }
            });
        };
        sign_many(&key, "before");

        // Logged out by another part of the process: the next signature on a worker logs in
        // again.
        let ctx = cryptoki::context::Pkcs11::new(softhsm::module_path()).unwrap();
        let slot = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == TOKEN)
            .unwrap();
        let session = ctx.open_ro_session_no_drop(slot).unwrap();
        session.logout().unwrap();
        let _ = session.close();
        sign_many(&key, "after logout");

        // The token goes away, then comes back.
        let tokens = dir.join("tokens");
        let away = dir.join("tokens-away");
        std::fs::rename(&tokens, &away).unwrap();
        std::thread::sleep(TOKEN_CHECK_INTERVAL);
        let k = Arc::clone(&key);
        let while_away = rt
            .block_on(rt.spawn(async move { k.sign(b"while away") }))
            .unwrap();
        match while_away {
            Err(SigningError::KeyUnavailable(why)) => assert!(!why.contains(USER_PIN)),
            other => panic!("expected KeyUnavailable, got {other:?}"),
        }
        std::fs::rename(&away, &tokens).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let k = Arc::clone(&key);
            match rt
                .block_on(rt.spawn(async move { k.sign(b"back") }))
                .unwrap()
            {
                Ok(signature) => {
                    assert!(verifies(&key, b"back", &signature));
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("the key did not come back: {e}"),
            }
        }
        sign_many(&key, "back");
    });
}

/// The key signs with a copy of itself in each of its sessions: a session object, sensitive
/// and not extractable like the token's key, gone when the key is closed; the token holds
/// only the key it had.
#[test]
fn sessions_sign_with_protected_session_copies() {
    in_token("sessions_sign_with_protected_session_copies", |_| {
        let module = module();
        let uri = generate_key_pair(&module, &pin(), &token(), "k", KeyKind::P256).unwrap();
        let key = Arc::new(Pkcs11Key::open(module, pin(), uri, 2).unwrap());
        // Two threads at once: the pool opens its second session (and copy).
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let key = key.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let message = format!("{t} {i}");
                        let signature = key.sign(message.as_bytes()).unwrap();
                        assert!(verifies(&*key, message.as_bytes(), &signature));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Another session of this process (session objects are visible to all of an
        // application's sessions; the login is shared too).
        let ctx = cryptoki::context::Pkcs11::new(softhsm::module_path()).unwrap();
        let slot = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == TOKEN)
            .unwrap();
        let session = ctx.open_ro_session_no_drop(slot).unwrap();
        let private = |token: bool| {
            session
                .find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Token(token),
                ])
                .unwrap()
        };
        let copies = private(false);
        assert!(
            (1..=2).contains(&copies.len()),
            "{} session copies",
            copies.len()
        );
        for copy in &copies {
            let attrs = session
                .get_attributes(
                    *copy,
                    &[
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::Label,
                    ],
                )
                .unwrap();
            assert!(attrs.contains(&Attribute::Sensitive(true)), "{attrs:?}");
            assert!(attrs.contains(&Attribute::Extractable(false)), "{attrs:?}");
            assert!(
                attrs.contains(&Attribute::Label(b"k".to_vec())),
                "{attrs:?}"
            );
        }
        assert_eq!(private(true).len(), 1);
        // Closing the key closes its sessions, and their copies go with them.
        drop(key);
        assert!(private(false).is_empty());
        assert_eq!(private(true).len(), 1);
        let _ = session.close();
    });
}
