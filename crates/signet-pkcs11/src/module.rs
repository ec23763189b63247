//! A loaded PKCS#11 module, shared by every key in it, and the user PIN.
//!
//! `C_Initialize` may be called once per process per module, so modules are kept in one
//! registry by path. When a token goes away (removed, its module's store gone, the module
//! reset), sessions and object handles die with it; [`Module::reset`] finalises the module
//! and initialises it again, so keys come back by themselves once the token does. Each
//! initialisation has a generation number: a session from an older generation is dead and
//! is dropped without being closed (closing its handle could close a newer session that
//! reuses the number).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::{Pkcs11Error, Pkcs11Uri};

/// How often a module that failed to initialise is tried again: bounds the cost of a token
/// that stays away while requests keep asking for signatures.
const RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// A token's user PIN. Never printed: `Debug` shows `Pin(<redacted>)`; zeroed when dropped.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

impl Pin {
    /// A PIN given as text.
    pub fn new(pin: impl Into<String>) -> Result<Self, Pkcs11Error> {
        let pin = Zeroizing::new(pin.into());
        if pin.is_empty() {
            return Err(Pkcs11Error::Pin("the PIN is empty".into()));
        }
        Ok(Pin(pin))
    }

    /// The PIN in `path`: its first line, without the line ending.
    pub fn from_file(path: &Path) -> Result<Self, Pkcs11Error> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Pkcs11Error::Pin(format!("reading {}: {e}", path.display())))?,
        );
        let line = text.lines().next().unwrap_or("");
        Pin::new(line.to_string()).map_err(|e| Pkcs11Error::Pin(format!("{}: {e}", path.display())))
    }

    /// The PIN in the environment variable [`crate::PIN_ENV`], if set and not empty.
    pub fn from_env() -> Option<Self> {
        std::env::var(crate::PIN_ENV)
            .ok()
            .and_then(|p| Pin::new(p).ok())
    }

    fn auth(&self) -> AuthPin {
        AuthPin::new(self.0.as_str().into())
    }
}

/// A PKCS#11 module loaded from one path, shared by every key in its tokens.
pub struct Module {
    path: PathBuf,
    state: Mutex<State>,
    /// Held shared by every call into the module and exclusively by [`Module::reset`]:
    /// C_Finalize must not run while another thread is inside the module (a module may free
    /// what that call is using).
    calls: RwLock<()>,
    /// `State::generation`, readable without the state lock (every signature asks for it).
    generation: AtomicU64,
}

struct State {
    ctx: Option<Pkcs11>,
    generation: u64,
    last_attempt: Option<Instant>,
    last_error: String,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Module>>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    MODULES.get_or_init(Default::default)
}

impl Module {
    /// The module at `path`, loaded and initialised (once per process).
    pub fn open(path: &Path) -> Result<Arc<Module>, Pkcs11Error> {
        let mut modules = registry()
            .lock()
            .map_err(|_| Pkcs11Error::Pkcs11("the module registry lock is poisoned".into()))?;
        if let Some(module) = modules.get(path) {
            return Ok(module.clone());
        }
        let ctx = initialise(path)?;
        let module = Arc::new(Module {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                ctx: Some(ctx),
                generation: 0,
                last_attempt: None,
                last_error: String::new(),
            }),
            calls: RwLock::new(()),
            generation: AtomicU64::new(0),
        });
        modules.insert(path.to_path_buf(), module.clone());
        Ok(module)
    }

    /// The module's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The live context and its generation; initialises the module again if a reset left
    /// it down (at most every [`RETRY_INTERVAL`]).
    pub(crate) fn context(&self) -> Result<(Pkcs11, u64), Pkcs11Error> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| Pkcs11Error::Pkcs11("the module lock is poisoned".into()))?;
        if let Some(ctx) = &state.ctx {
            return Ok((ctx.clone(), state.generation));
        }
        if state
            .last_attempt
            .is_some_and(|t| t.elapsed() < RETRY_INTERVAL)
        {
            return Err(self.down(&state.last_error));
        }
        state.last_attempt = Some(Instant::now());
        match initialise(&self.path) {
            Ok(ctx) => {
                tracing::info!(module = %self.path.display(), "PKCS#11 module initialised again");
                state.ctx = Some(ctx.clone());
                Ok((ctx, state.generation))
            }
            Err(e) => {
                state.last_error = e.to_string();
                Err(e)
            }
        }
    }

    /// Run `f`, a call into the module, never at the same time as a [`Module::reset`].
    pub(crate) fn call<T>(&self, f: impl FnOnce() -> T) -> T {
        let _shared = self.calls.read().unwrap_or_else(|e| e.into_inner());
        f()
    }

    /// The current generation (sessions of older ones are dead).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Finalise the module after a failure seen by a session of `generation`, unless that
    /// was done already; the next [`Module::context`] initialises it again.
    pub(crate) fn reset(&self, generation: u64, why: &str) {
        // Every other call out of the module first (taken before the state lock, which
        // callers holding `calls` may wait for).
        let _exclusive = self.calls.write().unwrap_or_else(|e| e.into_inner());
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.generation != generation {
            return;
        }
        tracing::warn!(
            module = %self.path.display(),
            reason = why,
            "the PKCS#11 token failed: re-initialising the module"
        );
        state.generation += 1;
        self.generation.store(state.generation, Ordering::Release);
        state.last_attempt = None;
        state.last_error = why.to_string();
        if let Some(ctx) = state.ctx.take()
            && let Err(e) = ctx.finalize()
        {
            tracing::debug!(error = %e, "C_Finalize failed");
        }
    }

    fn down(&self, why: &str) -> Pkcs11Error {
        Pkcs11Error::Module {
            path: self.path.display().to_string(),
            reason: format!("not available ({why})"),
        }
    }

    /// The slot holding the token `uri` names (by label, serial, manufacturer, model).
    pub(crate) fn find_slot(ctx: &Pkcs11, uri: &Pkcs11Uri) -> Result<(Slot, String), Pkcs11Error> {
        let slots = ctx.get_slots_with_token().map_err(ck)?;
        let mut found = None;
        for slot in slots {
            let info = ctx.get_token_info(slot).map_err(ck)?;
            let matches = |want: &Option<String>, have: &str| {
                want.as_deref().is_none_or(|w| w == have.trim_end())
            };
            if matches(&uri.token, info.label())
                && matches(&uri.serial, info.serial_number())
                && matches(&uri.manufacturer, info.manufacturer_id())
                && matches(&uri.model, info.model())
            {
                if found.is_some() {
                    return Err(Pkcs11Error::TokenNotFound(format!(
                        "{uri} (more than one token matches: name it by token= or serial=)"
                    )));
                }
                found = Some((slot, info.label().trim_end().to_string()));
            }
        }
        found.ok_or_else(|| Pkcs11Error::TokenNotFound(uri.to_string()))
    }

    /// Log the application in as the token's user through `session` (a login holds for
    /// every session of the application, so "already logged in" is success).
    pub(crate) fn login(session: &Session, token: &str, pin: &Pin) -> Result<(), Pkcs11Error> {
        match session.login(UserType::User, Some(&pin.auth())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(CkError::Pkcs11(
                rv @ (RvError::PinIncorrect
                | RvError::PinLocked
                | RvError::PinExpired
                | RvError::PinInvalid
                | RvError::PinLenRange),
                _,
            )) => Err(Pkcs11Error::Login {
                token: token.to_string(),
                reason: format!("{rv:?}"),
            }),
            Err(e) => Err(ck(e)),
        }
    }
}

fn initialise(path: &Path) -> Result<Pkcs11, Pkcs11Error> {
    let module_error = |reason: String| Pkcs11Error::Module {
        path: path.display().to_string(),
        reason,
    };
    let ctx = Pkcs11::new(path).map_err(|e| module_error(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(ctx),
        Err(e) => Err(module_error(format!("C_Initialize: {e}"))),
    }
}

/// A cryptoki error as ours, without the module's long prose for each code.
pub(crate) fn ck(e: CkError) -> Pkcs11Error {
    Pkcs11Error::Pkcs11(short(&e))
}

/// `CKR_…`-style short form of a cryptoki error: the code and the function.
pub(crate) fn short(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{function:?}: {rv:?}"),
        other => other.to_string(),
    }
}
