use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use clap::Args;
use llmdrop::pipeline::{describe, ModelOptions};
use llmdrop::DropPlan;
use llmdrop_serve::{Limits, Model, ServeOptions, Server, ShutdownHandle};
use serde::Serialize;

use crate::args::{threads, Ctx, DropArgs, ModelArgs};
use crate::output;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    drop: DropArgs,
    /// Serve --model pruned by a plan.json (as `llmdrop drop` writes).
    #[arg(long, conflicts_with_all = ["drop_attn", "drop_mlp"])]
    plan: Option<PathBuf>,
    /// Serve a pruned model directory (as `llmdrop drop` writes) instead of --model.
    #[arg(long, conflicts_with_all = ["model", "plan", "drop_attn", "drop_mlp"])]
    pruned: Option<PathBuf>,
    /// Address to listen on (loopback by default: nothing else can connect).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// The model's name in /v1/models (default: the file or directory name).
    #[arg(long)]
    served_model_name: Option<String>,
    /// Requests waiting for the model at most (more get 503).
    #[arg(long, default_value_t = Limits::default().queue)]
    queue: usize,
}

#[derive(serde::Deserialize)]
struct PlanFile {
    plan: DropPlan,
}

#[derive(Serialize)]
struct ServeReport {
    address: String,
    model: String,
    name: String,
    plan: DropPlan,
    dtype: String,
    threads: usize,
    chat_template: bool,
}

/// The running server, for the signal thread (see [`drain`]).
static SERVER: Mutex<Option<ShutdownHandle>> = Mutex::new(None);
/// The signal that asked the server to stop (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Called by the signal thread: while a server runs, the first SIGINT / SIGTERM / SIGHUP
/// makes it stop accepting, finish its open requests and return (true); a second one, or
/// any without a server, is left to the caller, which exits at once (false).
pub fn drain(sig: i32) -> bool {
    let guard = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    match guard.as_ref() {
        Some(h)
            if SIGNAL
                .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok() =>
        {
            eprintln!("\nllmdrop: draining open requests; a second signal stops at once");
            h.shutdown();
            true
        }
        _ => false,
    }
}

pub fn run(a: ServeArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    let plan = match &a.plan {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            serde_json::from_str::<PlanFile>(&text)
                .map_err(|e| anyhow::anyhow!("{}: not a plan.json: {e}", p.display()))?
                .plan
        }
        None => a.drop.plan(),
    };
    let opts = match &a.pruned {
        Some(dir) => ModelOptions {
            path: Some(dir.clone()),
            dtype: a.model.dtype,
        },
        None => a.model.options(),
    };
    let mut model = Model::load(&opts, &plan)?;
    if let Some(n) = &a.served_model_name {
        model = model.with_name(n.clone());
    }
    let serve = ServeOptions {
        host: a.host,
        port: a.port,
        limits: Limits {
            queue: a.queue.max(1),
            ..Limits::default()
        },
        ..ServeOptions::default()
    };
    let server = Server::bind(model, serve)?;
    let addr = server.local_addr();
    let m = server.model();
    let report = ServeReport {
        address: format!("http://{addr}"),
        model: m.path().display().to_string(),
        name: m.name().to_string(),
        plan: m.decoder().plan().clone(),
        dtype: a.model.dtype.name().to_string(),
        threads: threads(),
        chat_template: m.has_chat_template(),
    };
    *SERVER.lock().unwrap_or_else(|e| e.into_inner()) = Some(server.shutdown_handle());
    if ctx.json {
        output::print_json("serve", &report)?;
    }
    if !ctx.quiet {
        let dropped = if report.plan.is_empty() {
            "no modules dropped".to_string()
        } else {
            describe(&report.plan)
        };
        eprintln!(
            "llmdrop: serving {} ({dropped}; {}, {} threads) on {}/v1 (Ctrl-C drains and stops)",
            report.name, report.dtype, report.threads, report.address
        );
    }
    let result = server.run();
    SERVER.lock().unwrap_or_else(|e| e.into_inner()).take();
    result?;
    Ok(match SIGNAL.load(Ordering::SeqCst) {
        0 => ExitCode::SUCCESS,
        sig => ExitCode::from((128 + sig) as u8),
    })
}
