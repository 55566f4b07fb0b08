//! Password hashing (argon2id), login tokens (JWT HS256) and the signing secret.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::{info, warn};
use uuid::Uuid;

/// How long a login token stays valid.
pub const TOKEN_LIFETIME: TimeDelta = TimeDelta::hours(24);

/// Bytes of a generated signing secret.
const GENERATED_SECRET_BYTES: usize = 32;

/// A failure of the password or token machinery itself, never of the caller's input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Hashing or verifying a password failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The hashing task panicked or was cancelled.
    #[error("password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Signing a token failed.
    #[error("signing the token failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Hashes and verifies passwords with argon2id on the blocking thread pool.
///
/// Each hash takes tens of milliseconds of CPU and about 19 MiB of memory (the argon2 crate's
/// default parameters), so a semaphore bounds how many run at once.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Hash checked when the e-mail is unknown, so that unknown e-mails and wrong passwords
    /// take the same time.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// Creates a hasher that runs at most `concurrency` hashes at once.
    ///
    /// # Errors
    ///
    /// Returns [`AuthError`] when the dummy hash cannot be computed.
    pub async fn new(concurrency: usize) -> Result<Passwords, AuthError> {
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let dummy_hash = tokio::task::spawn_blocking(|| hash_blocking("dummy"))
            .await??
            .into();
        Ok(Passwords {
            permits,
            dummy_hash,
        })
    }

    /// Hashes `password` into a PHC string with a fresh random salt.
    ///
    /// # Errors
    ///
    /// Returns [`AuthError`] when hashing fails.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        self.run_blocking(move || hash_blocking(&password)).await
    }

    /// Returns whether `password` matches `stored_hash`. Without a stored hash (unknown user)
    /// a dummy hash is checked instead and the result is `false`.
    ///
    /// # Errors
    ///
    /// Returns [`AuthError`] when the hashing task fails; a malformed stored hash counts as
    /// a mismatch and is logged.
    pub async fn verify(
        &self,
        password: String,
        stored_hash: Option<String>,
    ) -> Result<bool, AuthError> {
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run_blocking(move || Ok(verify_blocking(&password, &hash)))
            .await?;
        Ok(known && matches)
    }

    async fn run_blocking<T, F>(&self, work: F) -> Result<T, AuthError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, AuthError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|closed| AuthError::Hash(closed.to_string()))?;
        tokio::task::spawn_blocking(work).await?
    }
}

fn hash_blocking(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|cause| AuthError::Hash(cause.to_string()))
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    match Argon2::default().verify_password(password.as_bytes(), hash) {
        Ok(()) => true,
        Err(argon2::password_hash::Error::PasswordInvalid) => false,
        Err(cause) => {
            warn!(%cause, "stored password hash could not be checked");
            false
        }
    }
}

/// Claims of a login token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    /// Issue time, seconds since the Unix epoch.
    pub iat: i64,
    /// Expiry time, seconds since the Unix epoch.
    pub exp: i64,
}

/// The reason a presented token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// The signature is valid but the expiry time has passed.
    Expired,
    /// The token is malformed, signed with another key or algorithm, or lacks a claim.
    Invalid,
}

/// Issues and checks HS256 login tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Tokens {
    /// Creates a token service signing with `secret`.
    ///
    /// # Errors
    ///
    /// Returns [`AuthError::Sign`] when the secret is empty.
    pub fn new(secret: &[u8]) -> Result<Tokens, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Tokens {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
        })
    }

    /// Issues a token for `user`, valid for [`TOKEN_LIFETIME`] from `now`.
    ///
    /// # Errors
    ///
    /// Returns [`AuthError::Sign`] when signing fails.
    pub fn issue(&self, user: Uuid, now: DateTime<Utc>) -> Result<String, AuthError> {
        let claims = Claims {
            sub: user,
            iat: now.timestamp(),
            exp: (now + TOKEN_LIFETIME).timestamp(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Checks the signature and expiry of `token` and returns its claims.
    ///
    /// # Errors
    ///
    /// Returns [`TokenRejection::Expired`] for an expired token, [`TokenRejection::Invalid`]
    /// for any other failure.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenRejection> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(error) if matches!(error.kind(), ErrorKind::ExpiredSignature) => {
                Err(TokenRejection::Expired)
            }
            Err(_) => Err(TokenRejection::Invalid),
        }
    }
}

/// A failure to set up the signing secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// `JWT_SECRET_KEY` is set but empty.
    #[error("JWT_SECRET_KEY is empty; set it to a long random string or unset it")]
    Empty,
    /// PostgreSQL mode without `JWT_SECRET_KEY`.
    #[error(
        "JWT_SECRET_KEY is required with DATABASE_URL, because every server sharing the \
         database must sign tokens with the same secret"
    )]
    RequiredWithDatabase,
    /// The secret file could not be read or written.
    #[error("{action} the JWT secret file {path} failed: {source}")]
    File {
        /// The operation that failed: `reading` or `creating`.
        action: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The secret file exists but is empty.
    #[error("the JWT secret file {path} is empty; delete it to generate a new secret")]
    EmptyFile {
        /// The file.
        path: String,
    },
}

/// Returns the token signing secret: `configured` when set, else (embedded mode only) the
/// secret kept in `file`, which is generated with owner-only permissions on first start.
///
/// # Errors
///
/// Returns [`SecretError`] when the configured secret is empty, when PostgreSQL mode lacks
/// one, or when the file cannot be read or created.
pub fn signing_secret(
    configured: Option<&str>,
    shared_database: bool,
    file: &Path,
) -> Result<Vec<u8>, SecretError> {
    if let Some(secret) = configured {
        if secret.is_empty() {
            return Err(SecretError::Empty);
        }
        if secret.len() < 32 {
            warn!("JWT_SECRET_KEY is shorter than 32 bytes; a longer random secret is safer");
        }
        return Ok(secret.as_bytes().to_vec());
    }
    if shared_database {
        return Err(SecretError::RequiredWithDatabase);
    }
    read_or_create_secret(file)
}

fn read_or_create_secret(file: &Path) -> Result<Vec<u8>, SecretError> {
    let path = file.display().to_string();
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let secret = text.trim();
            if secret.is_empty() {
                return Err(SecretError::EmptyFile { path });
            }
            info!(path = %path, "using the JWT secret kept in the data directory");
            return Ok(secret.as_bytes().to_vec());
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(SecretError::File {
                action: "reading",
                path,
                source,
            });
        }
    }

    let mut bytes = [0_u8; GENERATED_SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    write_owner_only(file, &secret).map_err(|source| SecretError::File {
        action: "creating",
        path: path.clone(),
        source,
    })?;
    warn!(
        path = %path,
        "JWT_SECRET_KEY is not set; generated a secret and saved it in the data directory. \
         Tokens stay valid across restarts as long as this file is kept"
    );
    Ok(secret.into_bytes())
}

/// Creates `file` with mode 0600 (on Unix) and writes `contents`; fails if it exists.
fn write_owner_only(file: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut handle = options.open(file)?;
    handle.write_all(contents.as_bytes())?;
    handle.write_all(b"\n")?;
    handle.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_round_trip() {
        let passwords = Passwords::new(2).await.expect("dummy hash");
        let hash = passwords.hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let right = passwords.verify("correct horse".into(), Some(hash.clone()));
        assert!(right.await.expect("verify"));
        let wrong = passwords.verify("wrong horse".into(), Some(hash));
        assert!(!wrong.await.expect("verify"));
    }

    #[tokio::test]
    async fn unknown_user_never_matches() {
        let passwords = Passwords::new(1).await.expect("dummy hash");
        let result = passwords.verify("dummy".into(), None).await;
        assert!(!result.expect("verify"));
    }

    #[test]
    fn token_round_trip() {
        let tokens = Tokens::new(b"0123456789abcdef0123456789abcdef").expect("key");
        let user = Uuid::new_v4();
        let token = tokens.issue(user, Utc::now()).expect("sign");
        let claims = tokens.verify(&token).expect("valid");
        assert_eq!(claims.sub, user);
        assert_eq!(claims.exp - claims.iat, TOKEN_LIFETIME.num_seconds());
    }

    #[test]
    fn token_expired_and_invalid() {
        let tokens = Tokens::new(b"0123456789abcdef0123456789abcdef").expect("key");
        let old = Utc::now() - TimeDelta::hours(25);
        let expired = tokens.issue(Uuid::new_v4(), old).expect("sign");
        assert_eq!(tokens.verify(&expired), Err(TokenRejection::Expired));
        assert_eq!(tokens.verify("not.a.token"), Err(TokenRejection::Invalid));

        let other = Tokens::new(b"another secret, also 32 bytes lo").expect("key");
        let foreign = other.issue(Uuid::new_v4(), Utc::now()).expect("sign");
        assert_eq!(tokens.verify(&foreign), Err(TokenRejection::Invalid));
    }

    #[test]
    fn secret_file_created_once_owner_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("jwt_secret");
        let first = signing_secret(None, false, &file).expect("generated");
        let second = signing_secret(None, false, &file).expect("read back");
        assert_eq!(first, second);
        assert_eq!(first.len(), GENERATED_SECRET_BYTES * 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn secret_rules() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("jwt_secret");
        let configured = signing_secret(Some("configured"), true, &file).expect("configured");
        assert_eq!(configured, b"configured");
        assert!(!file.exists());
        assert!(matches!(
            signing_secret(Some(""), false, &file),
            Err(SecretError::Empty)
        ));
        assert!(matches!(
            signing_secret(None, true, &file),
            Err(SecretError::RequiredWithDatabase)
        ));
    }
}
