//! Who may connect and how: trust (the default), SCRAM-SHA-256 against each role's verifier
//! (with `--password`, the bootstrap superuser's), TLS from a configured certificate, and the
//! connection limits.
//!
//! pgwire drives the SCRAM exchange and the SSLRequest negotiation; this module decides which
//! of its startup handlers a connection gets, admits the startup message's role
//! (`execute::Database::admit`) and builds the rustls configuration.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{SCRAM_ITERATIONS, ScramAuth, gen_salted_password, random_nonce, scram_keys};
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use pgwire::api::{ClientInfo, ConnectionManager, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::errors::fatal;
use crate::error::{Error, Result, SqlState};
use crate::execute::Database;

/// PostgreSQL's SQLSTATE for a configuration problem (config_file_error).
const CONFIG_ERROR: SqlState = SqlState::ConfigFileError;

/// How clients authenticate and whether they may use TLS; fixed at start-up.
#[derive(Default)]
pub struct Security {
    password: Option<Arc<SaltedPassword>>,
    tls: Option<TlsAcceptor>,
    /// The same certificate for `--http` (ALPN `http/1.1`).
    http_tls: Option<TlsAcceptor>,
    /// The certificate chain (PEM), for SCRAM channel binding over TLS.
    cert_pem: Option<Vec<u8>>,
}

impl Security {
    /// `password`: require SCRAM-SHA-256 of every login, with this password for the bootstrap
    /// superuser `asofdb` and each role's own for the others; `tls`: certificate and private
    /// key PEM files.
    pub fn new(password: Option<&str>, tls: Option<(&std::path::Path, &std::path::Path)>) -> Result<Self> {
        if password.is_some_and(str::is_empty) {
            return Err(Error::invalid_input(CONFIG_ERROR, "the password must not be empty"));
        }
        let password = password.map(|p| Arc::new(SaltedPassword::new(p)));
        let (tls, http_tls, cert_pem) = match tls {
            None => (None, None, None),
            Some((cert, key)) => {
                let cert_pem = read_file(cert, "TLS certificate")?;
                let key_pem = read_file(key, "TLS private key")?;
                // PostgreSQL 17 clients may start TLS directly (sslnegotiation=direct),
                // naming the ALPN `postgresql`.
                let wire = tls_acceptor(&cert_pem, &key_pem, b"postgresql")?;
                let http = tls_acceptor(&cert_pem, &key_pem, b"http/1.1")?;
                (Some(wire), Some(http), Some(cert_pem))
            }
        };
        Ok(Self { password, tls, http_tls, cert_pem })
    }

    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.clone()
    }

    /// TLS for the HTTP port (`--http`), from the same certificate.
    pub fn http_tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.http_tls.clone()
    }

    /// The startup handler for one new connection (SCRAM keeps per-connection state).
    pub(super) fn startup(&self, connections: &Arc<ConnectionManager>, admitted: bool, db: &Arc<Database>) -> Startup {
        let way = self.way(connections, admitted, db);
        Startup { db: db.clone(), way }
    }

    fn way(&self, connections: &Arc<ConnectionManager>, admitted: bool, db: &Arc<Database>) -> Way {
        if !admitted {
            return Way::TooManyClients;
        }
        let Some(password) = &self.password else {
            return Way::Trust(TrustStartup { connections: connections.clone() });
        };
        let verifiers = Arc::new(RoleVerifiers { db: db.clone(), bootstrap: password.clone() });
        let handler = |scram: ScramAuth| {
            Box::new(
                SASLAuthStartupHandler::new(Arc::new(DefaultServerParameterProvider::default()))
                    .with_scram(scram)
                    .with_connection_manager(connections.clone()),
            )
        };
        let plain = handler(ScramAuth::new(verifiers.clone()));
        // Over TLS, SCRAM-SHA-256-PLUS is offered too, binding the exchange to the certificate;
        // offering it in the clear would make libpq refuse the server.
        let bound = self.cert_pem.as_ref().and_then(|pem| {
            let mut scram = ScramAuth::new(verifiers.clone());
            match scram.configure_certificate(pem) {
                Ok(()) => Some(handler(scram)),
                Err(e) => {
                    tracing::warn!("SCRAM channel binding disabled: {e}");
                    None
                }
            }
        });
        Way::Scram { plain, bound }
    }
}

fn read_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::invalid_input(CONFIG_ERROR, format!("cannot read {what} {}: {e}", path.display())))
}

fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8], alpn: &[u8]) -> Result<TlsAcceptor> {
    let bad = |what: &str, e: &dyn std::fmt::Display| Error::invalid_input(CONFIG_ERROR, format!("{what}: {e}"));
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("invalid TLS certificate", &e))?;
    if certs.is_empty() {
        return Err(Error::invalid_input(CONFIG_ERROR, "the TLS certificate file holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad("invalid TLS private key", &e))?;
    // The provider is named: with several rustls backends linked in, rustls cannot pick one.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS configuration", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("TLS certificate and key do not fit", &e))?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The configured password as a SCRAM-SHA-256 verifier, made once at start-up: its salt,
/// StoredKey and ServerKey, as PostgreSQL stores one. SCRAM keeps neither the password nor the
/// salted password (which would let whoever reads it log in); the command line's copy, and
/// the HTTP port's bearer check, still hold the password itself.
#[derive(Debug)]
struct SaltedPassword {
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl SaltedPassword {
    fn new(password: &str) -> Self {
        // pgwire's nonce is 18 random bytes (base64): random, which is all a salt must be.
        let salt = random_nonce().into_bytes();
        let (stored_key, server_key) = scram_keys(&gen_salted_password(password, &salt, SCRAM_ITERATIONS));
        Self { salt, stored_key, server_key }
    }
}

/// Each role's verifier: the bootstrap superuser's from `--password`, the others' from the
/// catalog. A name without one fails as a wrong password does, so a client cannot tell
/// which roles exist.
struct RoleVerifiers {
    db: Arc<Database>,
    bootstrap: Arc<SaltedPassword>,
}

impl Debug for RoleVerifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoleVerifiers")
    }
}

#[async_trait]
impl AuthSource for RoleVerifiers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        if user == crate::catalog::BOOTSTRAP_ROLE {
            let own = &self.bootstrap;
            return Ok(Password::scram_verifier(own.salt.clone(), own.stored_key.clone(), own.server_key.clone()));
        }
        match self.db.verifier(user) {
            Some(v) => Ok(Password::scram_verifier(v.salt, v.stored_key, v.server_key)),
            // As PostgreSQL's mock exchange: a verifier nobody's password matches, so the
            // exchange fails where a wrong password's does, not a step earlier.
            None => {
                let mock = crate::catalog::Verifier::of_password(&random_nonce());
                Ok(Password::scram_verifier(mock.salt, mock.stored_key, mock.server_key))
            }
        }
    }
}

/// Accepts every client without a password (loopback trust, the default of spec section 4).
/// Registers each connection so CancelRequests can find its running statement.
pub struct TrustStartup {
    connections: Arc<ConnectionManager>,
}

impl NoopStartupHandler for TrustStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }
}

type ScramStartup = SASLAuthStartupHandler<DefaultServerParameterProvider>;

/// The startup handler of one connection: admits the role its startup message names, then
/// lets the way of logging in run.
pub struct Startup {
    db: Arc<Database>,
    way: Way,
}

enum Way {
    Trust(TrustStartup),
    /// SCRAM-SHA-256; `bound` also offers channel binding, for clients that came over TLS.
    Scram {
        plain: Box<ScramStartup>,
        bound: Option<Box<ScramStartup>>,
    },
    /// Over `--max-connections`: answered as PostgreSQL does, FATAL 53300 after the startup
    /// message.
    TooManyClients,
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let (PgWireFrontendMessage::Startup(startup), Way::Trust(_) | Way::Scram { .. }) = (&message, &self.way) {
            let user = startup.parameters.get("user").map(String::as_str).unwrap_or_default();
            match self.db.admit(user, matches!(self.way, Way::Trust(_))) {
                Ok(login) => {
                    client.session_extensions().insert(login);
                }
                // An unknown role with a password asked: its exchange fails (`RoleVerifiers`).
                Err(e) if e.state() == SqlState::InvalidPassword => {}
                Err(e) => {
                    super::audit::login_failed_as(client, user, e.sqlstate(), &e.to_string());
                    return Err(fatal(e.state(), e.to_string()));
                }
            }
        }
        match &self.way {
            Way::Trust(handler) => handler.on_startup(client, message).await?,
            Way::Scram { plain, bound } => match bound {
                Some(bound) if client.is_secure() => bound.on_startup(client, message).await?,
                _ => plain.on_startup(client, message).await?,
            },
            Way::TooManyClients => {
                super::audit::login_failed(client, SqlState::TooManyConnections.code(), "too many clients");
                return Err(fatal(SqlState::TooManyConnections, "sorry, too many clients already"));
            }
        }
        // The handlers above set ReadyForQuery once, and only once, the client is in.
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            // A role made while its login was under way was not admitted at the startup
            // message: it is now, or the connection ends. Nothing runs without a Login.
            if client.session_extensions().get::<crate::execute::Login>().is_none() {
                let user = client.metadata().get(pgwire::api::METADATA_USER).cloned().unwrap_or_default();
                match self.db.admit(&user, false) {
                    Ok(login) => {
                        client.session_extensions().insert(login);
                    }
                    Err(e) => {
                        super::audit::login_failed_as(client, &user, e.sqlstate(), &e.to_string());
                        return Err(fatal(e.state(), e.to_string()));
                    }
                }
            }
            client.session_extensions().insert(LoggedIn);
        }
        Ok(())
    }
}

/// Marks a connection that completed its startup (and its password exchange, if any).
struct LoggedIn;

/// Refuses work on a connection that has not logged in. pgwire keeps reading a connection
/// after a FATAL startup error (a wrong password, too many clients) and would hand the next
/// messages to the query handlers; they call this first.
pub fn require_login<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<()> {
    if client.session_extensions().get::<LoggedIn>().is_some() {
        return Ok(());
    }
    Err(fatal(SqlState::InvalidAuthorizationSpecification, "the connection has not completed authentication"))
}
