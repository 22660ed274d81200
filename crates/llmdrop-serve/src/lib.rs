//! `llmdrop serve`: an OpenAI- and vLLM-compatible HTTP server for a (pruned) model, so
//! that lm-eval-harness (`local-completions`, `local-chat-completions`) and OpenAI clients
//! run against exactly the model llmdrop evaluates.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/completions` | prompt as a string, strings, token ids or lists of token ids (ids used as given: no BOS added); `max_tokens` (0 allowed), `echo`, `logprobs` N, `temperature`, `top_p`, `top_k`, `seed`, `stop`, `stream` |
//! | `POST /v1/chat/completions` | messages rendered with the model's chat template; `stream`, `logprobs` / `top_logprobs` |
//! | `GET /v1/models` | the one model served |
//! | `POST /tokenize`, `POST /detokenize`, `GET /tokenizer_info` | vLLM's shapes (lm-eval's `tokenizer_backend=remote`) |
//! | `GET /health` | 200 while serving |
//!
//! One worker thread runs the model (each forward pass spreads over rayon's pool); requests
//! wait in a bounded queue (503 when full). Log-likelihood requests (`max_tokens` 0 or 1
//! with `echo`) score their prompts in groups that share a prefix, the prefix once into the
//! KV cache; such requests waiting in the queue together share the passes of prefixes they
//! have in common, each answered with exactly the bits it gets alone. A bad request gets an OpenAI error object and never stops the server; after
//! [`ShutdownHandle::shutdown`], the server stops accepting, finishes the requests it has
//! and returns.
//!
//! # Example
//!
//! ```no_run
//! use llmdrop::pipeline::ModelOptions;
//! use llmdrop::DropPlan;
//! use llmdrop_serve::{Model, ServeOptions, Server};
//!
//! # fn main() -> Result<(), llmdrop_serve::ServeError> {
//! let model = Model::load(&ModelOptions::new("model.gguf"), &DropPlan::empty())?;
//! let server = Server::bind(model, ServeOptions::default())?;
//! println!("listening on http://{}", server.local_addr());
//! server.run()
//! # }
//! ```

mod api;
mod engine;
mod error;
mod http;
mod model;
mod template;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub use error::{ApiError, ServeError};
pub use model::Model;

/// What one request may ask for at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Request body bytes (413 over it).
    pub max_body_bytes: usize,
    /// Prompts in one completion request (413 over it).
    pub max_prompts: usize,
    /// Prompt tokens in one request, all prompts together (413 over it). One prompt may
    /// have at most the model's positions (413 over them).
    pub max_request_tokens: usize,
    /// Requests waiting for the model (503 when full).
    pub queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_prompts: 1024,
            max_request_tokens: 1 << 20,
            queue: 256,
        }
    }
}

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Loopback unless asked otherwise.
    pub host: IpAddr,
    /// 0: any free port (see [`Server::local_addr`]).
    pub port: u16,
    pub limits: Limits,
    /// After a shutdown request, how long open requests may take to finish.
    pub drain_timeout: Duration,
    /// Threads for the HTTP side (the model has its own).
    pub http_threads: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8000,
            limits: Limits::default(),
            drain_timeout: Duration::from_secs(60),
            http_threads: 2,
        }
    }
}

/// Asks a running [`Server`] to stop: no new connections, open requests finish (within
/// [`ServeOptions::drain_timeout`]), then [`Server::run`] returns.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: std::net::TcpListener,
    model: Arc<Model>,
    opts: ServeOptions,
    shutdown: Arc<watch::Sender<bool>>,
}

impl Server {
    /// Binds the address (the port is taken from here on).
    pub fn bind(model: Model, opts: ServeOptions) -> Result<Self, ServeError> {
        let addr = SocketAddr::new(opts.host, opts.port);
        let io = |context: String| move |source| ServeError::Io { context, source };
        let listener = std::net::TcpListener::bind(addr).map_err(io(format!("binding {addr}")))?;
        listener
            .set_nonblocking(true)
            .map_err(io("configuring the socket".into()))?;
        Ok(Self {
            listener,
            model: Arc::new(model),
            opts,
            shutdown: Arc::new(watch::channel(false).0),
        })
    }

    /// The address bound (with the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::new(self.opts.host, self.opts.port))
    }

    /// The model served.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// A handle that stops the server from another thread (a signal handler).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Serves until [`ShutdownHandle::shutdown`], then drains and returns.
    pub fn run(self) -> Result<(), ServeError> {
        let io = |context: &str| {
            let context = context.to_string();
            move |source| ServeError::Io { context, source }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.opts.http_threads.max(1))
            .thread_name("llmdrop-http")
            .enable_all()
            .build()
            .map_err(io("starting the runtime"))?;
        let (queue, jobs) = mpsc::channel(self.opts.limits.queue.max(1));
        let model = self.model.clone();
        let worker = std::thread::Builder::new()
            .name("llmdrop-model".into())
            .spawn(move || engine::run_worker(model, jobs))
            .map_err(io("starting the model thread"))?;
        let state = Arc::new(http::AppState {
            model: self.model.clone(),
            queue,
            limits: self.opts.limits.clone(),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            next_id: AtomicU64::new(0),
        });
        let app = http::router(state);
        let drain = self.opts.drain_timeout;
        let stop = self.shutdown.clone();
        let listener = self.listener;
        let result = rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(io("registering the socket"))?;
            let (mut a, mut b) = (stop.subscribe(), stop.subscribe());
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                if a.wait_for(|s| *s).await.is_err() {
                    std::future::pending::<()>().await;
                }
            });
            tokio::select! {
                r = serve => r.map_err(io("serving")),
                // requests still open after the drain time are cut off
                _ = async move {
                    if b.wait_for(|s| *s).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(drain).await;
                } => Ok(()),
            }
        });
        // drops every task still holding the queue: the worker ends after its job
        rt.shutdown_timeout(Duration::from_secs(1));
        let _ = worker.join();
        result
    }
}
