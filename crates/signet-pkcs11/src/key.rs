//! A private key in a token, signing through a pool of sessions; and making new CA keys in
//! a token.
//!
//! ECDSA keys sign with CKM_ECDSA over a digest computed here (SHA-256 for P-256, SHA-384
//! for P-384), and the token's raw `r || s` is written as the DER `Ecdsa-Sig-Value` X.509
//! wants. RSA keys sign with CKM_SHA256_RSA_PKCS (PKCS#1 v1.5, the token hashes).
//!
//! The module is a blocking C library. A signature from a module that answers fast (a
//! smoothed signing time under [`INLINE_SIGN_LIMIT`], as SoftHSM2's ~40-80 µs) with a
//! session idle in the pool is made on the calling runtime worker, as a file key's is:
//! handing the worker's core to another thread (`block_in_place`) costs more than such a
//! signature. Anything that may wait (no idle session, a slow or network module, a
//! re-login or a module reset) tells a multi-threaded tokio runtime it is about to block
//! (`block_in_place`), so other tasks move to other workers while the token works.
//!
//! Each pooled session signs with its own session copy of the key (`C_CopyObject` with
//! `CKA_TOKEN` false; sensitive and not extractable as the original is): the copy lives in
//! the module, dies with its session, and never leaves the token any more than the original.
//! A module keeps token objects in its store and may re-read them for every use (SoftHSM2
//! opens, locks and reads two files of its file store on each `C_SignInit` of a token key:
//! 14 system calls and about a quarter of its CPU time per signature); a session object is
//! held in memory. A module that refuses the copy (`CKA_COPYABLE` false, or no
//! `C_CopyObject`) signs with the token object as before. Because a copy would go on signing
//! after the token object is gone (its store removed, the key deleted), the token object is
//! looked at (`C_GetAttributeValue`) at least every [`TOKEN_CHECK_INTERVAL`] while the key
//! signs; a token that went away makes the key unavailable within that interval.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use ring::digest;
use signet_pkix::der_writer::{TAG_SEQUENCE, push_tlv, push_unsigned_integer};
use signet_pkix::{SignatureAlgorithm, SigningError, SigningKey};

use crate::module::{Module, Pin, ck, short};
use crate::{Pkcs11Error, Pkcs11Uri};

/// The EC parameters (namedCurve OIDs, RFC 5480 section 2.1.1.1) of the curves Signet signs with.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// How long a signature waits for a free session before the key counts as unavailable.
const SESSION_WAIT: Duration = Duration::from_secs(30);

/// Signatures whose smoothed time is at most this are made on the calling runtime worker
/// (when a session is idle); slower modules sign under `block_in_place`. Tokio's guidance is
/// to block a worker no longer than 10-100 µs between awaits; this bound is a few of them.
pub const INLINE_SIGN_LIMIT: Duration = Duration::from_micros(250);

/// While a key signs with session copies, how often its token object is checked for (the
/// longest a copy may go on signing after the token's key or store is gone).
pub const TOKEN_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// The message a key signs when it is opened, to prove the token's private key matches the
/// public key it reports and that the signature is encoded as verifiers expect.
const SELF_TEST: &[u8] = b"signet: PKCS#11 key self-test";

/// A private key in a PKCS#11 token: a [`SigningKey`] that asks the token to sign.
pub struct Pkcs11Key {
    module: Arc<Module>,
    pin: Pin,
    uri: Pkcs11Uri,
    algorithm: SignatureAlgorithm,
    public_key: Vec<u8>,
    pool: Mutex<Pool>,
    freed: Condvar,
    max_sessions: usize,
    /// Smoothed time of one `C_SignInit` + `C_Sign`, in nanoseconds (an exponentially
    /// weighted average over the last signatures, weight 1/8).
    sign_nanos: AtomicU64,
    /// When the token object was last seen, in nanoseconds since `epoch` (while sessions
    /// sign with copies; see [`TOKEN_CHECK_INTERVAL`]).
    token_seen: AtomicU64,
    epoch: Instant,
}

impl fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("uri", &self.uri.to_string())
            .field("module", &self.module.path())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Pool {
    idle: Vec<Pooled>,
    open: usize,
}

/// A session logged in to the key's token, with the key's handle in it.
struct Pooled {
    session: Session,
    /// The key in the token.
    key: ObjectHandle,
    /// What signs: the session's copy of `key`, or `key` itself if the module refused to
    /// copy it.
    signer: ObjectHandle,
    generation: u64,
}

impl Pkcs11Key {
    /// Open the key `uri` names in `module`, logging in with `pin`, with at most
    /// `max_sessions` sessions signing at once (at least 1). The key signs a test message
    /// that its public key must verify; a wrong PIN is [`Pkcs11Error::Login`].
    pub fn open(
        module: Arc<Module>,
        pin: Pin,
        uri: Pkcs11Uri,
        max_sessions: usize,
    ) -> Result<Self, Pkcs11Error> {
        let (ctx, generation) = module.context()?;
        let (slot, token) = Module::find_slot(&ctx, &uri)?;
        let session = ctx.open_ro_session_no_drop(slot).map_err(ck)?;
        let found = (|| {
            Module::login(&session, &token, &pin)?;
            let key = find_private_key(&session, &uri)?;
            let (algorithm, public_key) = read_public_key(&session, key, &uri)?;
            let signer = session_copy(&session, key, &uri);
            Ok::<_, Pkcs11Error>((key, signer, algorithm, public_key))
        })();
        let (key, signer, algorithm, public_key) = match found {
            Ok(found) => found,
            Err(e) => {
                let _ = session.close();
                return Err(e);
            }
        };
        let key = Pkcs11Key {
            module,
            pin,
            uri,
            algorithm,
            public_key,
            pool: Mutex::new(Pool {
                idle: vec![Pooled {
                    session,
                    key,
                    signer,
                    generation,
                }],
                open: 1,
            }),
            freed: Condvar::new(),
            max_sessions: max_sessions.max(1),
            // Until the first signatures are timed, as if slow: nothing inline.
            sign_nanos: AtomicU64::new(u64::MAX),
            token_seen: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        let signature = key
            .sign_blocking(SELF_TEST)
            .map_err(|e| Pkcs11Error::Pkcs11(format!("{}: test signature: {e}", key.uri)))?;
        if !signet_pkix::cert::signature_verifies(
            &key.spki_der(),
            key.algorithm.algorithm_identifier(),
            SELF_TEST,
            &signature,
        ) {
            return Err(Pkcs11Error::KeyNotFound(format!(
                "{}: the token's signature does not verify with the key's public key",
                key.uri
            )));
        }
        Ok(key)
    }

    /// The URI the key was opened by.
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    /// The smoothed signing time, once the key has signed (the self-test's time first).
    pub fn smoothed_sign_time(&self) -> Option<Duration> {
        match self.sign_nanos.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// The mechanism and the bytes handed to the token for `message`.
    fn mechanism_input(&self, message: &[u8]) -> (Mechanism<'static>, Vec<u8>) {
        use SignatureAlgorithm as A;
        match self.algorithm {
            A::EcdsaP256Sha256 => (
                Mechanism::Ecdsa,
                digest::digest(&digest::SHA256, message).as_ref().to_vec(),
            ),
            A::EcdsaP384Sha384 => (
                Mechanism::Ecdsa,
                digest::digest(&digest::SHA384, message).as_ref().to_vec(),
            ),
            _ => (Mechanism::Sha256RsaPkcs, message.to_vec()),
        }
    }

    /// Signs `message` with a session from the pool, trying once more after a re-login or
    /// a module reset. May wait for a session (up to [`SESSION_WAIT`]).
    fn sign_blocking(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        let (mechanism, input) = self.mechanism_input(message);
        let mut last = String::new();
        // A second try after a re-login or a module reset; a third would only wait longer
        // for a token that is not there.
        for _ in 0..2 {
            let pooled = self
                .checkout()
                .map_err(|e| SigningError::KeyUnavailable(format!("{}: {e}", self.uri)))?;
            match self.attempt(pooled, &mechanism, &input) {
                Ok(signature) => return Ok(signature),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Retry(why)) => last = why,
            }
        }
        Err(SigningError::KeyUnavailable(format!(
            "{}: {last}",
            self.uri
        )))
    }

    /// One signature with `pooled`, which goes back to the pool (or is discarded, after a
    /// failure that killed it). A lost login is restored and a dead module reset before
    /// [`Failure::Retry`] is returned.
    fn attempt(
        &self,
        pooled: Pooled,
        mechanism: &Mechanism<'_>,
        input: &[u8],
    ) -> Result<Vec<u8>, Failure> {
        use SignatureAlgorithm as A;
        let started = Instant::now();
        let signed = self.module.call(|| {
            if pooled.signer != pooled.key && self.token_check_due() {
                pooled
                    .session
                    .get_attributes(pooled.key, &[AttributeType::Sign])?;
            }
            pooled.session.sign(mechanism, pooled.signer, input)
        });
        match signed {
            Ok(signature) => {
                self.record_sign_time(started.elapsed());
                self.checkin(pooled);
                match self.algorithm {
                    A::EcdsaP256Sha256 | A::EcdsaP384Sha384 => {
                        ecdsa_sig_value(&signature).map_err(Failure::Final)
                    }
                    _ => Ok(signature),
                }
            }
            Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => {
                // The token forgot the login (a reset, another application logging out):
                // log in again (and copy the key again: a logout may end private session
                // objects) and retry.
                let mut pooled = pooled;
                match self.module.call(|| self.relogin_and_copy(&mut pooled)) {
                    Ok(()) => {
                        self.checkin(pooled);
                        Err(Failure::Retry("the token is not logged in".into()))
                    }
                    Err(e) => {
                        self.discard(pooled);
                        Err(Failure::Final(SigningError::KeyUnavailable(format!(
                            "{}: logging in again: {e}",
                            self.uri
                        ))))
                    }
                }
            }
            Err(
                e @ CkError::Pkcs11(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid, _),
            ) if pooled.signer != pooled.key => {
                // The session copy is gone (a logout ends private session objects) or the
                // token object is: log in again and copy again; if that fails too, the
                // token is gone.
                let mut pooled = pooled;
                match self.module.call(|| self.relogin_and_copy(&mut pooled)) {
                    Ok(()) if pooled.signer != pooled.key => {
                        self.checkin(pooled);
                        Err(Failure::Retry("the key's session copy was lost".into()))
                    }
                    _ => Err(self.token_failed(pooled, &e)),
                }
            }
            Err(e) if token_gone(&e) => Err(self.token_failed(pooled, &e)),
            Err(e) => {
                self.discard(pooled);
                Err(Failure::Final(SigningError::Failed(format!(
                    "{}: {}",
                    self.uri,
                    short(&e)
                ))))
            }
        }
    }

    /// Drops `pooled` after `e` said its token is gone, and has the module reset.
    fn token_failed(&self, pooled: Pooled, e: &CkError) -> Failure {
        let why = short(e);
        let generation = pooled.generation;
        self.discard(pooled);
        self.module.reset(generation, &why);
        Failure::Retry(why)
    }

    /// Whether this signature should first check that the token object is still there: true
    /// for one caller once [`TOKEN_CHECK_INTERVAL`] has passed since the last check.
    fn token_check_due(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let seen = self.token_seen.load(Ordering::Relaxed);
        let interval = u64::try_from(TOKEN_CHECK_INTERVAL.as_nanos()).unwrap_or(u64::MAX);
        now.saturating_sub(seen) >= interval
            && self
                .token_seen
                .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Folds one successful signature's time into the smoothed signing time.
    fn record_sign_time(&self, took: Duration) {
        // One signature held up by the machine (a preempted thread) counts as at most four
        // times the inline limit, so a lone outlier cannot keep fast signatures off the
        // inline path for long; a module that is slow every time still averages above it.
        let sample = u64::try_from(took.min(INLINE_SIGN_LIMIT * 4).as_nanos()).unwrap_or(0);
        // A lost update under a race only skips one sample of an average.
        let old = self.sign_nanos.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.sign_nanos
            .store(new.min(u64::MAX - 1), Ordering::Relaxed);
    }

    /// An idle session of the current generation, if one is there right now; never waits
    /// for the pool (a contended lock or an empty pool is `None`) and never opens one.
    fn try_idle(&self) -> Option<Pooled> {
        let mut pool = self.pool.try_lock().ok()?;
        let current = self.module.generation();
        while let Some(pooled) = pool.idle.pop() {
            if pooled.generation == current {
                return Some(pooled);
            }
            pool.open -= 1;
        }
        None
    }

    fn relogin(&self, session: &Session) -> Result<(), Pkcs11Error> {
        let token = self.uri.token.clone().unwrap_or_default();
        Module::login(session, &token, &self.pin)
    }

    /// Logs in again through `pooled`'s session and, if it signs with a session copy,
    /// replaces the copy (with the token object itself if the module no longer copies it).
    fn relogin_and_copy(&self, pooled: &mut Pooled) -> Result<(), Pkcs11Error> {
        self.relogin(&pooled.session)?;
        if pooled.signer != pooled.key {
            // The old copy may be dead already; if not, it goes now rather than with the
            // session.
            let _ = pooled.session.destroy_object(pooled.signer);
            pooled.signer = session_copy(&pooled.session, pooled.key, &self.uri);
        }
        Ok(())
    }

    /// A session of the current generation: an idle one, a new one, or (at the limit) the
    /// next one freed.
    fn checkout(&self) -> Result<Pooled, Pkcs11Error> {
        let poisoned = || Pkcs11Error::Pkcs11("the session pool lock is poisoned".into());
        let mut pool = self.pool.lock().map_err(|_| poisoned())?;
        loop {
            let current = self.module.generation();
            while let Some(pooled) = pool.idle.pop() {
                if pooled.generation == current {
                    return Ok(pooled);
                }
                // Died with its generation: not closed (see the module's notes).
                pool.open -= 1;
            }
            if pool.open < self.max_sessions {
                pool.open += 1;
                drop(pool);
                let opened = self.module.call(|| self.open_session());
                if opened.is_err() {
                    let mut pool = self.pool.lock().map_err(|_| poisoned())?;
                    pool.open -= 1;
                    self.freed.notify_one();
                }
                return opened;
            }
            let (guard, waited) = self
                .freed
                .wait_timeout(pool, SESSION_WAIT)
                .map_err(|_| poisoned())?;
            pool = guard;
            if waited.timed_out() && pool.idle.is_empty() && pool.open >= self.max_sessions {
                return Err(Pkcs11Error::Pkcs11(format!(
                    "all {} sessions stayed busy for {SESSION_WAIT:?}",
                    self.max_sessions
                )));
            }
        }
    }

    fn open_session(&self) -> Result<Pooled, Pkcs11Error> {
        let (ctx, generation) = self.module.context()?;
        let (slot, token) = Module::find_slot(&ctx, &self.uri)?;
        let session = ctx.open_ro_session_no_drop(slot).map_err(ck)?;
        let found = Module::login(&session, &token, &self.pin)
            .and_then(|()| find_private_key(&session, &self.uri));
        match found {
            Ok(key) => Ok(Pooled {
                signer: session_copy(&session, key, &self.uri),
                session,
                key,
                generation,
            }),
            Err(e) => {
                let _ = session.close();
                Err(e)
            }
        }
    }

    fn checkin(&self, pooled: Pooled) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.idle.push(pooled);
            self.freed.notify_one();
        }
    }

    fn discard(&self, pooled: Pooled) {
        if pooled.generation == self.module.generation() {
            let _ = self.module.call(|| pooled.session.close());
        }
        if let Ok(mut pool) = self.pool.lock() {
            pool.open -= 1;
            self.freed.notify_one();
        }
    }
}

impl Drop for Pkcs11Key {
    /// Closes the key's sessions that are still alive.
    fn drop(&mut self) {
        let current = self.module.generation();
        if let Ok(pool) = self.pool.get_mut() {
            for pooled in pool.idle.drain(..) {
                if pooled.generation == current {
                    let _ = self.module.call(|| pooled.session.close());
                }
            }
        }
    }
}

impl SigningKey for Pkcs11Key {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn subject_public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                let fast =
                    self.sign_nanos.load(Ordering::Relaxed) <= INLINE_SIGN_LIMIT.as_nanos() as u64;
                if let Some(pooled) = fast.then(|| self.try_idle()).flatten() {
                    let (mechanism, input) = self.mechanism_input(message);
                    match self.attempt(pooled, &mechanism, &input) {
                        Ok(signature) => return Ok(signature),
                        Err(Failure::Final(e)) => return Err(e),
                        // Recovered from a lost login or a reset: the retries may wait.
                        Err(Failure::Retry(_)) => {}
                    }
                }
                tokio::task::block_in_place(|| self.sign_blocking(message))
            }
            _ => self.sign_blocking(message),
        }
    }
}

/// Why a signature attempt did not give a signature.
enum Failure {
    /// The signature is refused or the key cannot be reached: the caller's answer.
    Final(SigningError),
    /// A lost login was restored or a dead module reset: another try may succeed.
    Retry(String),
}

/// Whether `e` means the token (or the module's hold on it) is gone, so sessions and
/// handles are dead and the module must be initialised again, rather than that this
/// signature was refused.
fn token_gone(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::DeviceMemory
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::CryptokiNotInitialized
                | RvError::GeneralError
                | RvError::FunctionFailed,
            _
        )
    )
}

/// A copy of the private key `key` as an object of `session` (see the module notes), or
/// `key` itself if the module will not copy it.
fn session_copy(session: &Session, key: ObjectHandle, uri: &Pkcs11Uri) -> ObjectHandle {
    match copy_key(session, key) {
        Ok(copy) => copy,
        Err(e) => {
            tracing::debug!(key = %uri, error = %short(&e), "the module did not copy the key into a session object: signing with the token object");
            key
        }
    }
}

/// `C_CopyObject` of `key` into a session object. The copy keeps every other attribute of
/// the original (`CKA_SENSITIVE`, `CKA_EXTRACTABLE`, `CKA_PRIVATE`...): PKCS#11 lets a copy
/// only tighten them, and SoftHSM2 refuses even naming them (CKR_ATTRIBUTE_READ_ONLY).
fn copy_key(session: &Session, key: ObjectHandle) -> Result<ObjectHandle, CkError> {
    session.copy_object(key, &[Attribute::Token(false)])
}

/// The one private key `uri` names (by label and/or id) in the session's token.
fn find_private_key(session: &Session, uri: &Pkcs11Uri) -> Result<ObjectHandle, Pkcs11Error> {
    // Token objects only: the key's session copies (in this application's other sessions)
    // have the same label and id.
    let mut template = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Token(true),
    ];
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    let found = session.find_objects(&template).map_err(ck)?;
    match found.as_slice() {
        [key] => Ok(*key),
        [] => Err(Pkcs11Error::KeyNotFound(format!(
            "no private key matching {uri} in the token"
        ))),
        _ => Err(Pkcs11Error::KeyNotFound(format!(
            "{} private keys match {uri}: name one by id=",
            found.len()
        ))),
    }
}

/// The key's signature algorithm and the contents of its subjectPublicKey BIT STRING, from
/// the public key object of the same id (or label), or for RSA from the private key itself.
fn read_public_key(
    session: &Session,
    key: ObjectHandle,
    uri: &Pkcs11Uri,
) -> Result<(SignatureAlgorithm, Vec<u8>), Pkcs11Error> {
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::KeyType,
                AttributeType::Id,
                AttributeType::Label,
            ],
        )
        .map_err(ck)?;
    let mut key_type = None;
    let (mut id, mut label) = (None, None);
    for attr in attrs {
        match attr {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Id(v) if !v.is_empty() => id = Some(v),
            Attribute::Label(v) if !v.is_empty() => label = Some(v),
            _ => {}
        }
    }
    let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
    match (id, label) {
        (Some(id), _) => template.push(Attribute::Id(id)),
        (None, Some(label)) => template.push(Attribute::Label(label)),
        (None, None) => {}
    }
    let public = match session.find_objects(&template).map_err(ck)?.as_slice() {
        [one] if template.len() > 1 => Some(*one),
        _ => None,
    };
    match key_type {
        Some(KeyType::EC) => {
            let public = public.ok_or_else(|| {
                Pkcs11Error::KeyNotFound(format!(
                    "{uri}: the EC key has no public key object with the same id in the token"
                ))
            })?;
            let attrs = session
                .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
                .map_err(ck)?;
            let (mut params, mut point) = (None, None);
            for attr in attrs {
                match attr {
                    Attribute::EcParams(p) => params = Some(p),
                    Attribute::EcPoint(p) => point = Some(p),
                    _ => {}
                }
            }
            let (alg, len) = match params.as_deref() {
                Some(P256_PARAMS) => (SignatureAlgorithm::EcdsaP256Sha256, 65),
                Some(P384_PARAMS) => (SignatureAlgorithm::EcdsaP384Sha384, 97),
                _ => {
                    return Err(Pkcs11Error::UnsupportedKey(format!(
                        "{uri}: an EC key on a curve other than P-256 or P-384"
                    )));
                }
            };
            let point = point
                .and_then(|p| uncompressed_point(&p, len))
                .ok_or_else(|| {
                    Pkcs11Error::UnsupportedKey(format!("{uri}: unreadable CKA_EC_POINT"))
                })?;
            Ok((alg, point))
        }
        Some(KeyType::RSA) => {
            let source = public.unwrap_or(key);
            let attrs = session
                .get_attributes(
                    source,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )
                .map_err(ck)?;
            let (mut n, mut e) = (None, None);
            for attr in attrs {
                match attr {
                    Attribute::Modulus(v) => n = Some(v),
                    Attribute::PublicExponent(v) => e = Some(v),
                    _ => {}
                }
            }
            let (Some(n), Some(e)) = (n, e) else {
                return Err(Pkcs11Error::UnsupportedKey(format!(
                    "{uri}: the RSA key's modulus or exponent cannot be read"
                )));
            };
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return Err(Pkcs11Error::UnsupportedKey(format!(
                    "{uri}: an RSA key of fewer than 2048 bits"
                )));
            }
            // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
            // (RFC 8017 appendix A.1.1)
            let mut content = Vec::with_capacity(n.len() + e.len() + 16);
            push_unsigned_integer(&mut content, &n);
            push_unsigned_integer(&mut content, &e);
            let mut der = Vec::with_capacity(content.len() + 4);
            push_tlv(&mut der, TAG_SEQUENCE, &content);
            Ok((SignatureAlgorithm::RsaPkcs1Sha256, der))
        }
        other => Err(Pkcs11Error::UnsupportedKey(format!(
            "{uri}: key type {other:?} (Signet signs with EC P-256/P-384 or RSA keys)"
        ))),
    }
}

/// The uncompressed point from CKA_EC_POINT: DER `OCTET STRING` around it as PKCS#11
/// requires, or (as some modules return it) the bare point.
fn uncompressed_point(value: &[u8], len: usize) -> Option<Vec<u8>> {
    if value.len() == len && value[0] == 0x04 {
        return Some(value.to_vec());
    }
    match value {
        [0x04, l, rest @ ..] if usize::from(*l) == len && rest.len() == len => Some(rest.to_vec()),
        [0x04, 0x81, l, rest @ ..] if usize::from(*l) == len && rest.len() == len => {
            Some(rest.to_vec())
        }
        _ => None,
    }
    .filter(|p| p[0] == 0x04)
}

/// `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 section 2.2.3) from
/// the token's `r || s` (PKCS#11 v2.40 section 2.3.1).
fn ecdsa_sig_value(raw: &[u8]) -> Result<Vec<u8>, SigningError> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(SigningError::Failed(format!(
            "the token returned an ECDSA signature of {} bytes",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut content = Vec::with_capacity(raw.len() + 6);
    push_unsigned_integer(&mut content, r);
    push_unsigned_integer(&mut content, s);
    let mut der = Vec::with_capacity(content.len() + 3);
    push_tlv(&mut der, TAG_SEQUENCE, &content);
    Ok(der)
}

/// The key types Signet makes in a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// ECDSA P-256 (signs with SHA-256).
    P256,
    /// ECDSA P-384 (signs with SHA-384).
    P384,
    /// RSA 2048 (PKCS#1 v1.5 with SHA-256).
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// RSA 4096.
    Rsa4096,
}

impl std::str::FromStr for KeyKind {
    type Err = Pkcs11Error;

    fn from_str(s: &str) -> Result<Self, Pkcs11Error> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "p256" | "ecdsap256" => Ok(KeyKind::P256),
            "p384" | "ecdsap384" => Ok(KeyKind::P384),
            "rsa2048" => Ok(KeyKind::Rsa2048),
            "rsa3072" => Ok(KeyKind::Rsa3072),
            "rsa4096" => Ok(KeyKind::Rsa4096),
            _ => Err(Pkcs11Error::UnsupportedKey(format!(
                "{s:?}: a key in a token is p256, p384, rsa2048, rsa3072 or rsa4096"
            ))),
        }
    }
}

/// Make a new key pair of `kind` in the token `token` names (its `token`/`serial`/...
/// attributes), labelled `label`, logged in with `pin`: the private key on the token,
/// private, sensitive, not extractable, for signing only. Refuses a label already in use.
/// Returns the URI naming the new key (token, label and a fresh random CKA_ID).
pub fn generate_key_pair(
    module: &Module,
    pin: &Pin,
    token: &Pkcs11Uri,
    label: &str,
    kind: KeyKind,
) -> Result<Pkcs11Uri, Pkcs11Error> {
    use ring::rand::SecureRandom as _;
    let (ctx, _) = module.context()?;
    let (slot, token_label) = Module::find_slot(&ctx, token)?;
    let session = ctx.open_rw_session(slot).map_err(ck)?;
    Module::login(&session, &token_label, pin)?;
    let existing = session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .map_err(ck)?;
    if !existing.is_empty() {
        return Err(Pkcs11Error::KeyExists(format!(
            "the token {token_label} already holds an object labelled {label:?}: refusing to \
             make another (delete it or choose another label)"
        )));
    }
    let mut id = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| Pkcs11Error::Pkcs11("no random bytes for the key id".into()))?;
    let common = |private: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ]
    };
    let mut public = common(false);
    public.push(Attribute::Verify(true));
    let mut private = common(true);
    private.extend([
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
    ]);
    let mechanism = match kind {
        KeyKind::P256 | KeyKind::P384 => {
            let params = if kind == KeyKind::P256 {
                P256_PARAMS
            } else {
                P384_PARAMS
            };
            public.push(Attribute::EcParams(params.to_vec()));
            Mechanism::EccKeyPairGen
        }
        KeyKind::Rsa2048 | KeyKind::Rsa3072 | KeyKind::Rsa4096 => {
            let bits: u64 = match kind {
                KeyKind::Rsa2048 => 2048,
                KeyKind::Rsa3072 => 3072,
                _ => 4096,
            };
            public.push(Attribute::ModulusBits(bits.into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            Mechanism::RsaPkcsKeyPairGen
        }
    };
    session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(ck)?;
    Ok(Pkcs11Uri {
        token: Some(token_label),
        object: Some(label.to_string()),
        id: Some(id.to_vec()),
        ..Pkcs11Uri::default()
    })
}

/// Delete the key pair `uri` names (private and public objects of its label and id) from
/// its token: for undoing a [`generate_key_pair`] whose CA was not completed. Returns how
/// many objects were deleted.
pub fn destroy_key_pair(module: &Module, pin: &Pin, uri: &Pkcs11Uri) -> Result<usize, Pkcs11Error> {
    let (ctx, _) = module.context()?;
    let (slot, token_label) = Module::find_slot(&ctx, uri)?;
    let session = ctx.open_rw_session(slot).map_err(ck)?;
    Module::login(&session, &token_label, pin)?;
    let mut template = Vec::new();
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    if template.is_empty() {
        return Ok(0);
    }
    let mut deleted = 0;
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        let mut t = template.clone();
        t.push(Attribute::Class(class));
        for object in session.find_objects(&t).map_err(ck)? {
            session.destroy_object(object).map_err(ck)?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn raw_ecdsa_signatures_become_der() {
        // r with its top bit set gains a 0x00; s with leading zeros loses them.
        let mut raw = vec![0x80; 32];
        raw.extend([0u8; 31]);
        raw.push(0x05);
        let der = ecdsa_sig_value(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x21, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x05]);
        assert!(ecdsa_sig_value(&[1, 2, 3]).is_err());
        assert!(ecdsa_sig_value(&[]).is_err());
    }

    #[test]
    fn ec_points_are_unwrapped() {
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        let mut wrapped = vec![0x04, 65];
        wrapped.extend(&point);
        assert_eq!(uncompressed_point(&wrapped, 65), Some(point.clone()));
        assert_eq!(uncompressed_point(&point, 65), Some(point.clone()));
        assert_eq!(uncompressed_point(&wrapped, 97), None);
        assert_eq!(uncompressed_point(&[0x04, 1, 2], 65), None);
    }

    #[test]
    fn key_kinds_parse() {
        assert_eq!("P-256".parse::<KeyKind>().unwrap(), KeyKind::P256);
        assert_eq!("rsa-3072".parse::<KeyKind>().unwrap(), KeyKind::Rsa3072);
        assert!("ed25519".parse::<KeyKind>().is_err());
    }
}
