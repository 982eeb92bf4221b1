//! `grantmux sim`: run the simulator from the command line until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{DailyLimits, Faults, RateLimits, Sim, SimApp, SimConfig, SimError, SimHandle};

/// Flags of `grantmux sim`, boxed: they are many, and `main`'s `Command` enum should
/// not grow to their size for every other subcommand.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    #[command(flatten)]
    pub flags: Box<SimFlags>,
}

/// The flags themselves.
#[derive(Debug, clap::Args)]
pub struct SimFlags {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:9900")]
    pub listen: SocketAddr,
    #[arg(long, default_value = super::DEFAULT_CLIENT_ID)]
    pub client_id: String,
    #[arg(long, default_value = super::DEFAULT_CLIENT_SECRET)]
    pub client_secret: String,
    #[arg(long, default_value = super::DEFAULT_ACCOUNT_ID)]
    pub account_id: String,
    /// Also register a public client (PKCE, no secret) with this client ID.
    #[arg(long)]
    pub public_client_id: Option<String>,
    /// Lifetime of user access tokens, in seconds.
    #[arg(long, default_value_t = 3599)]
    pub token_ttl: u64,
    /// Lifetime of Server-to-Server tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub s2s_token_ttl: u64,
    /// A refresh no longer kills the previous access token at once.
    #[arg(long)]
    pub keep_previous_access: bool,
    /// Pre-June-2023 S2S: each new token kills the previous one.
    #[arg(long)]
    pub legacy_s2s: bool,
    /// Refuse token-endpoint parameters sent in the query string.
    #[arg(long)]
    pub no_query_params: bool,
    /// Per-account Light requests per second. Any rate-limit, daily-limit or
    /// meeting-writes flag turns limits on, with Zoom's Pro plan for the rest
    /// (30/20/10 per second, Resource-intensive 10 per minute, no daily limits,
    /// 100 meeting writes per user per day).
    #[arg(long)]
    pub rate_limit_light: Option<u32>,
    #[arg(long)]
    pub rate_limit_medium: Option<u32>,
    #[arg(long)]
    pub rate_limit_heavy: Option<u32>,
    /// Per-account Resource-intensive requests per minute.
    #[arg(long)]
    pub rate_limit_resource: Option<u32>,
    /// Per-account Light requests per UTC day.
    #[arg(long)]
    pub daily_limit_light: Option<u32>,
    #[arg(long)]
    pub daily_limit_medium: Option<u32>,
    #[arg(long)]
    pub daily_limit_heavy: Option<u32>,
    #[arg(long)]
    pub daily_limit_resource: Option<u32>,
    /// Per-account Heavy and Resource-intensive requests together per UTC day.
    #[arg(long)]
    pub daily_limit_heavy_and_resource: Option<u32>,
    /// Meeting creates and updates per user per UTC day.
    #[arg(long)]
    pub meeting_writes_per_user: Option<u32>,
    #[arg(long, default_value_t = 0)]
    pub token_latency_ms: u64,
    /// Fraction (0..=1) of token requests answered 503.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub token_error_rate: f64,
    /// Fraction (0..=1) of token requests whose connection is dropped.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub token_reset_rate: f64,
    /// Hold back token answers this long (e.g. `1500ms`) after handling them: the
    /// token has rotated (or the code is spent) before the caller hears so.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub token_answer_delay: Duration,
    #[arg(long, default_value_t = 0)]
    pub api_latency_ms: u64,
    /// Fraction (0..=1) of API requests answered 503.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub api_error_rate: f64,
    /// Fraction (0..=1) of API requests whose connection is dropped.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub api_reset_rate: f64,
    /// Hold back API answers this long (e.g. `1500ms`) after handling them.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub api_answer_delay: Duration,
    /// Serve HTTPS, writing the generated CA certificate (PEM) here.
    #[arg(long)]
    pub tls_ca_out: Option<PathBuf>,
    /// `api_url` in token answers (default: the simulator's own URL).
    #[arg(long)]
    pub api_url: Option<String>,
    /// Skip token checks on API routes (benchmarks): every call acts as the owner.
    #[arg(long)]
    pub no_token_checks: bool,
    /// Issue access tokens as opaque random strings, not JWTs (no `uid` to read).
    #[arg(long)]
    pub opaque_tokens: bool,
}

/// Why `grantmux sim` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SimCliError {
    #[error(transparent)]
    Start(#[from] SimError),
    #[error("cannot listen for shutdown signals: {0}")]
    Signals(std::io::Error),
}

/// Runs the simulator until Ctrl-C or SIGTERM, then shuts it down cleanly.
pub async fn run(args: SimArgs) -> Result<(), SimCliError> {
    let args = args.flags;
    let cfg = config(&args);
    let sim = Sim::start(cfg.clone()).await?;
    // Handlers go in before the `listening on` line, so a script that signals as soon
    // as it reads that line cannot kill the process uncleanly.
    let stop = shutdown_signal().map_err(SimCliError::Signals)?;
    print_settings(&args, &cfg, &sim);
    stop.await;
    println!("shutting down");
    sim.shutdown().await;
    Ok(())
}

fn config(args: &SimFlags) -> SimConfig {
    let rate_limits = rate_limits(args);
    SimConfig {
        listen: args.listen,
        apps: std::iter::once(SimApp {
            client_id: args.client_id.clone(),
            client_secret: args.client_secret.clone(),
            public: false,
        })
        .chain(args.public_client_id.iter().map(|id| SimApp {
            client_id: id.clone(),
            client_secret: String::new(),
            public: true,
        }))
        .collect(),
        account_id: args.account_id.clone(),
        user_token_ttl: Duration::from_secs(args.token_ttl),
        s2s_token_ttl: Duration::from_secs(args.s2s_token_ttl),
        invalidate_previous_access: !args.keep_previous_access,
        legacy_s2s: args.legacy_s2s,
        allow_query_params: !args.no_query_params,
        rate_limits,
        token_faults: Faults {
            latency: Duration::from_millis(args.token_latency_ms),
            answer_delay: args.token_answer_delay,
            error_rate: args.token_error_rate,
            reset_rate: args.token_reset_rate,
        },
        api_faults: Faults {
            latency: Duration::from_millis(args.api_latency_ms),
            answer_delay: args.api_answer_delay,
            error_rate: args.api_error_rate,
            reset_rate: args.api_reset_rate,
        },
        tls: args.tls_ca_out.clone(),
        api_url: args.api_url.clone(),
        check_tokens: !args.no_token_checks,
        opaque_tokens: args.opaque_tokens,
        ..SimConfig::default()
    }
}

/// Zoom's Pro plan with the flags' changes, if any rate-limit flag is given.
fn rate_limits(args: &SimFlags) -> Option<RateLimits> {
    let daily = DailyLimits {
        light: args.daily_limit_light,
        medium: args.daily_limit_medium,
        heavy: args.daily_limit_heavy,
        resource_intensive: args.daily_limit_resource,
        heavy_and_resource_intensive: args.daily_limit_heavy_and_resource,
    };
    let any = [
        args.rate_limit_light,
        args.rate_limit_medium,
        args.rate_limit_heavy,
        args.rate_limit_resource,
        args.meeting_writes_per_user,
    ]
    .iter()
    .any(Option::is_some)
        || daily != DailyLimits::default();
    let pro = RateLimits::default();
    any.then(|| RateLimits {
        light_per_second: args.rate_limit_light.unwrap_or(pro.light_per_second),
        medium_per_second: args.rate_limit_medium.unwrap_or(pro.medium_per_second),
        heavy_per_second: args.rate_limit_heavy.unwrap_or(pro.heavy_per_second),
        resource_intensive_per_minute: args
            .rate_limit_resource
            .unwrap_or(pro.resource_intensive_per_minute),
        daily,
        meeting_writes_per_user_per_day: args
            .meeting_writes_per_user
            .or(pro.meeting_writes_per_user_per_day),
    })
}

/// The effective settings, on stdout so scripts can read the bound address from the
/// `listening on` line. The client secret is not echoed.
fn print_settings(args: &SimFlags, cfg: &SimConfig, sim: &SimHandle) {
    println!("grantmux sim: a local imitation of Zoom's OAuth and REST API");
    println!("listening on {}", sim.base_url());
    if let Some(ca) = sim.ca_pem_path() {
        println!("CA certificate: {}", ca.display());
    }
    println!("client id: {}", args.client_id);
    println!("client secret: (from --client-secret)");
    println!(
        "account id: {}  default user: {}",
        cfg.account_id, cfg.default_user
    );
    println!(
        "token ttl: {}s user, {}s s2s; refresh kills previous access: {}; legacy s2s: {}",
        args.token_ttl, args.s2s_token_ttl, cfg.invalidate_previous_access, cfg.legacy_s2s
    );
    println!(
        "query-string token params: {}; token checks: {}; opaque access tokens: {}",
        cfg.allow_query_params, cfg.check_tokens, cfg.opaque_tokens
    );
    match &cfg.rate_limits {
        Some(r) => print_rate_limits(r),
        None => println!("rate limits: off"),
    }
    println!("token faults: {}", describe(&cfg.token_faults));
    println!("api faults: {}", describe(&cfg.api_faults));
}

fn print_rate_limits(r: &RateLimits) {
    println!(
        "rate limits: light {}/s, medium {}/s, heavy {}/s, resource-intensive {}/min",
        r.light_per_second,
        r.medium_per_second,
        r.heavy_per_second,
        r.resource_intensive_per_minute
    );
    let d = &r.daily;
    let daily = [
        ("light", d.light),
        ("medium", d.medium),
        ("heavy", d.heavy),
        ("resource-intensive", d.resource_intensive),
        ("heavy+resource-intensive", d.heavy_and_resource_intensive),
    ];
    let set: Vec<String> = daily
        .iter()
        .filter_map(|(name, limit)| limit.map(|l| format!("{name} {l}")))
        .collect();
    let writes = r
        .meeting_writes_per_user_per_day
        .map_or("no cap".to_owned(), |n| n.to_string());
    println!(
        "daily limits: {}; meeting writes per user per day: {writes}",
        if set.is_empty() {
            "none".to_owned()
        } else {
            set.join(", ")
        }
    );
}

/// One summary line's worth of faults, durations in the flags' own notation.
fn describe(f: &Faults) -> String {
    format!(
        "latency {}, answer delay {}, error rate {}, reset rate {}",
        humantime::format_duration(f.latency),
        humantime::format_duration(f.answer_delay),
        f.error_rate,
        f.reset_rate
    )
}

/// Registers the Ctrl-C and SIGTERM handlers now; the future resolves on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: SimFlags,
    }

    fn limits(flags: &[&str]) -> Option<RateLimits> {
        let args = std::iter::once("sim").chain(flags.iter().copied());
        let cli = Cli::try_parse_from(args).expect("valid flags");
        rate_limits(&cli.flags)
    }

    #[test]
    fn limits_are_off_without_a_limit_flag() {
        assert_eq!(limits(&["--listen", "127.0.0.1:0"]), None);
    }

    #[test]
    fn any_limit_flag_turns_on_the_pro_plan_with_its_changes() {
        let daily = limits(&["--daily-limit-medium", "5", "--daily-limit-resource", "9"]);
        let expected = RateLimits {
            daily: DailyLimits {
                medium: Some(5),
                resource_intensive: Some(9),
                ..DailyLimits::default()
            },
            ..RateLimits::default()
        };
        assert_eq!(daily, Some(expected));
        let rates = limits(&[
            "--rate-limit-resource",
            "3",
            "--meeting-writes-per-user",
            "7",
        ]);
        let expected = RateLimits {
            resource_intensive_per_minute: 3,
            meeting_writes_per_user_per_day: Some(7),
            ..RateLimits::default()
        };
        assert_eq!(rates, Some(expected));
        let combined = limits(&["--daily-limit-heavy-and-resource", "30000"]);
        let daily = combined.map(|r| r.daily.heavy_and_resource_intensive);
        assert_eq!(daily, Some(Some(30_000)));
    }
}
