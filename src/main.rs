//! The `grantmux` binary: parse the command line, load the config, run, pick the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// `EX_USAGE` from sysexits.h: the configuration or the command line is wrong.
const EXIT_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "grantmux",
    version,
    about = "Share one Zoom OAuth grant between many systems"
)]
struct Cli {
    /// Log format: human-readable text, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a config file: prints `ok`, or the error naming the offending key.
    Check {
        #[arg(long, short, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Run the proxy and admin listeners until SIGTERM or Ctrl-C. SIGHUP
    /// reloads the config (callers, apps, refresh and rate-limit settings, log level).
    Serve {
        #[arg(long, short, default_value = "proxy.toml")]
        config: PathBuf,
        /// Also reload when the config file changes (checked every 2 s).
        #[arg(long)]
        watch_config: bool,
    },
    /// Print the interception CA's certificate (PEM), creating the CA if the
    /// config's files do not exist yet: what clients with hard-coded Zoom URLs trust.
    Ca {
        #[arg(long, short, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Ask a running grantmux's admin API: grants, refresh, revoke, status, rate limits.
    Admin(grantmux::admin_cli::AdminArgs),
    /// Run a local imitation of Zoom's OAuth and REST API.
    Sim(grantmux::sim::cli::SimArgs),
    /// Two systems share one Zoom user, without and with grantmux: a side-by-side table.
    Demo {
        /// How long each of the two scenarios runs.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's and admin's output is what they print; only warnings and errors go to the log.
    let level = match cli.command {
        Command::Demo { .. } | Command::Admin(_) => "warn",
        _ => "info",
    };
    // A server's log is its output (`docker logs`, the kubelet read stdout); the
    // other commands print their answer on stdout, so their log goes to stderr.
    let log_to_stdout = matches!(cli.command, Command::Serve { .. });
    let log_hook = init_tracing(cli.log_format, level, log_to_stdout);
    log_panics_in_one_line();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Ca { config } => ca(&config),
        Command::Serve {
            config,
            watch_config,
        } => serve(&config, watch_config, log_hook),
        Command::Admin(args) => admin(args),
        Command::Sim(args) => run_async(grantmux::sim::cli::run(args)),
        Command::Demo { seconds } => run_async(grantmux::demo::main(grantmux::demo::DemoOptions {
            duration: std::time::Duration::from_secs(seconds),
            ..Default::default()
        })),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let config = match grantmux::config::Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {error}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Zoom's names pointed at grantmux's own listeners (a hosts file,
    // `hostAliases`) would make every forwarded call loop back. Resolved as
    // `serve` would: with `listen.tls`, through DNS rather than the hosts file.
    let resolver = match grantmux::upstream::Resolver::for_config(&config) {
        Ok(resolver) => resolver,
        Err(error) => {
            eprintln!("{}: {error}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let listen = &config.listen;
    let own: Vec<(&'static str, std::net::SocketAddr)> = [
        Some(("proxy", listen.proxy)),
        listen.tls.map(|a| ("tls", a)),
        listen.forward_proxy.map(|a| ("forward_proxy", a)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let checked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| {
            rt.block_on(grantmux::intercept::check_upstream(
                &config, &own, &resolver,
            ))
        });
    match checked {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            eprintln!("{}: {error}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    }
    println!("ok");
    ExitCode::SUCCESS
}

/// `grantmux ca`: the interception CA's certificate on stdout, nothing else,
/// so it can be redirected into a file clients trust.
fn ca(path: &std::path::Path) -> ExitCode {
    let config = match grantmux::config::Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {error}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(files) = &config.intercept.ca else {
        eprintln!(
            "{}: no CA files: with the memory store the CA lives only in the running process; \
             set intercept.ca_cert_file and intercept.ca_key_file",
            path.display()
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let hosts = &config.intercept.hosts;
    match grantmux::intercept::Authority::load_or_create(&files.cert, &files.key, hosts) {
        Ok(authority) => {
            print!("{}", authority.cert_pem());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("grantmux: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `grantmux admin`: 0 ok, 1 the API answered an error, 2 nothing answered,
/// 64 a bad `--admin` URL or config. One thread: it makes a few calls in turn.
fn admin(args: grantmux::admin_cli::AdminArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(grantmux::admin_cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("grantmux admin: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Checks the config before binding anything: a bad config exits 64, a start-up
/// failure (port taken, unreadable store) exits 1, a clean shutdown exits 0.
fn serve(
    path: &std::path::Path,
    watch: bool,
    log: Option<grantmux::reload::LogLevelHook>,
) -> ExitCode {
    // Errors go to the log like everything else `serve` says, so that with
    // `--log-format json` every line of its output is JSON.
    let config = match grantmux::config::Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(key = error.key(), "{}: {error}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(error) => {
            tracing::error!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        // Watching before the listeners open: a stop right after start is drained too.
        let stop = grantmux::signal::shutdown_requested();
        // And SIGHUP, which would otherwise end the process.
        let reload = grantmux::reload::ReloadOptions {
            path: path.to_owned(),
            watch,
            hangups: grantmux::signal::Hangups::register(),
            log,
        };
        let options = grantmux::app::StartOptions {
            reload: Some(reload),
            ..Default::default()
        };
        let running = grantmux::app::Running::start(config, options).await?;
        stop.await;
        tracing::info!("shutdown requested; draining");
        running.shutdown().await?;
        Ok::<(), grantmux::app::RunError>(())
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("grantmux: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_async<E: std::fmt::Display>(
    fut: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("grantmux: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `GRANTMUX_WORKER_THREADS=N` sizes the runtime; unset, one worker per core.
/// `1` runs everything on one thread (a current-thread runtime), as a one-worker
/// nginx or HAProxy does: the benchmarks pin it to one core.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let threads = std::env::var("GRANTMUX_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0);
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

/// A panic (redb's assertion on a damaged store file among them) is logged as
/// one line: where, and what. Its backtrace only at debug level: an operator
/// reading a damaged-store error needs the store's message, not a stack.
fn log_panics_in_one_line() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%at, %what, "a thread panicked");
        if tracing::enabled!(tracing::Level::DEBUG) {
            let backtrace = std::backtrace::Backtrace::force_capture();
            tracing::debug!(%backtrace, "panic backtrace");
        }
    }));
}

/// Installs the log subscriber. Returns the hook that changes its filter
/// (`log.level`, on start and on reload), or `None` when `GRANTMUX_LOG` is set:
/// the operator's variable then decides.
fn init_tracing(
    format: LogFormat,
    default_level: &str,
    to_stdout: bool,
) -> Option<grantmux::reload::LogLevelHook> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::EnvFilter;
    let (writer, terminal) = if to_stdout {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        (BoxMakeWriter::new(std::io::stdout), terminal)
    } else {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        (BoxMakeWriter::new(std::io::stderr), terminal)
    };
    let from_env = EnvFilter::try_from_env("GRANTMUX_LOG").ok();
    let pinned = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(writer);
    // The reload layer's type names the formatter, so each format builds its own.
    let hook: grantmux::reload::LogLevelHook = match format {
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            std::sync::Arc::new(move |level: &str| {
                let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
                handle.reload(filter).map_err(|e| e.to_string())
            })
        }
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            std::sync::Arc::new(move |level: &str| {
                let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
                handle.reload(filter).map_err(|e| e.to_string())
            })
        }
    };
    (!pinned).then_some(hook)
}
