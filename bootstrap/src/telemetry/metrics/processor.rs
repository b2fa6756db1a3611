//! The metrics side of the lifecycle: computes the enhanced metrics of each event, collects
//! custom metrics, and flushes everything to the chosen transport before the lifecycle asks
//! `/next` again (so a slow intake shows in post_runtime_duration, never in the response).
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, OnceCell};

use super::aggregation::Aggregator;
use super::config::{MetricsConfig, Transport};
use super::custom::{lambda_metric, CustomMetricError};
use super::dogstatsd::{BindError, DogStatsDServer, Drainer};
use super::enhanced::{self, Measured};
use super::flush_strategy::{FlushSchedule, FlushStrategy};
use super::point::{epoch_seconds, now_epoch_seconds, MetricPoint, MetricValue};
use super::proc::ProcReader;
use super::tags::{enhanced_tags, layer_tag, resolve_runtime, StaticTags};
use super::usage::UsageMonitor;
use crate::api_key::{self, ApiKey, ApiKeySettings};
use crate::handler::exec::output_watch::OutputWatch;
use crate::handler::BoxFuture;
use crate::lifecycle::{InitReport, InvocationReport, LifecycleEvent, LifecycleObserver, Timestamp};
use crate::sinks::datadog_api::{ApiSinkSettings, DatadogApiSink};
use crate::sinks::dogstatsd::{DogStatsDSink, EXTENSION_DOGSTATSD_ADDR};
use crate::sinks::extension_flush::ExtensionFlush;
use crate::sinks::forwarder_lines;

/// Custom points waiting for the next flush, at most; older ones are dropped (counted).
const MAX_PENDING_CUSTOM: usize = 100_000;
/// Points the DogStatsD server may queue between two flushes.
const DOGSTATSD_QUEUE: usize = 65_536;

/// Where the processor writes; production uses [`MetricsOutputs::default`].
pub struct MetricsOutputs {
    /// Forwarder lines (the process's stdout).
    pub stdout: Box<dyn Write + Send>,
    /// The Extension's DogStatsD address.
    pub extension_dogstatsd: SocketAddr,
    /// The Extension's universal-instrumentation address, for `DD_LOCAL_TEST`'s flush request.
    pub extension_lifecycle: SocketAddr,
    /// `/proc` and `/tmp` readers; `None` disables the `/proc` metrics.
    pub proc: Option<ProcReader>,
    /// `/etc/os-release`, for the runtime tag.
    pub os_release: std::path::PathBuf,
    /// Overrides the API sink's timeouts and retries (tests); the base URL always comes from
    /// the configuration.
    pub api_settings: Option<ApiSinkSettings>,
}

impl Default for MetricsOutputs {
    fn default() -> Self {
        Self {
            stdout: Box::new(std::io::stdout()),
            extension_dogstatsd: EXTENSION_DOGSTATSD_ADDR
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8125))),
            extension_lifecycle: SocketAddr::from(([127, 0, 0, 1], 8124)),
            proc: Some(ProcReader::default()),
            os_release: "/etc/os-release".into(),
            api_settings: None,
        }
    }
}

/// Counts over the process lifetime, for logs and tests.
#[derive(Debug, Default)]
pub struct FlushStats {
    pub lines_written: AtomicU64,
    pub api_points_sent: AtomicU64,
    pub api_failures: AtomicU64,
    /// Custom points dropped: no transport (FIPS), no API key, buffers full, intake refused.
    pub dropped: AtomicU64,
    /// Custom points in a request to the Datadog API not answered yet: lost if the sandbox
    /// shuts down first (counted and logged then).
    pub api_points_in_flight: AtomicU64,
}

struct ApiState {
    sink: DatadogApiSink,
    key: Arc<OnceCell<Option<ApiKey>>>,
    key_settings: ApiKeySettings,
    override_key: Mutex<Option<ApiKey>>,
    aggregator: Mutex<Aggregator>,
    constant_tags: Vec<String>,
    /// When the aggregated points go out (`DD_SERVERLESS_FLUSH_STRATEGY`).
    schedule: Mutex<FlushSchedule>,
}

/// Why a flush happens: the first two follow the flush strategy, the others always send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlushCause {
    Init,
    Invocation,
    /// The timer of `end,<ms>` / `continuously,<ms>`, while an invocation runs.
    DuringInvocation,
    TimeoutApproaching,
    Shutdown,
}

impl FlushCause {
    fn is_forced(self) -> bool {
        matches!(
            self,
            FlushCause::DuringInvocation | FlushCause::TimeoutApproaching | FlushCause::Shutdown
        )
    }
}

/// The flushes made while invocations run (`end,<ms>`, `continuously,<ms>`).
struct FlushesDuringInvocations {
    /// Invocations started and not yet reported: the timer flushes only while this is above 0.
    in_flight: AtomicUsize,
    /// Held by a timer flush while it sends; the end of an invocation waits for it, so no request
    /// is still on its way when the lifecycle asks `/next` (and Lambda may freeze the sandbox).
    sending: tokio::sync::Mutex<()>,
}

/// What is known of the last invocation once its flush ends; its post-runtime metrics go out
/// with the next flush.
struct PendingInvocation {
    tags: InvocationTags,
    timestamp: i64,
    received: Timestamp,
    answered: Timestamp,
    flushed: Timestamp,
}

/// An invocation's enhanced tag set, without and with the layer tag that every point gets.
#[derive(Clone)]
struct InvocationTags {
    base: Arc<[String]>,
    with_layer: Arc<[String]>,
}

impl InvocationTags {
    fn new(base: Vec<String>) -> Self {
        let mut with_layer = Vec::with_capacity(base.len() + 1);
        with_layer.extend_from_slice(&base);
        with_layer.push(layer_tag());
        Self {
            base: base.into(),
            with_layer: with_layer.into(),
        }
    }
}

/// Tag sets by (function ARN, cold start): a sandbox sees one ARN (two with an alias), so
/// an invocation's tags are built once, not formatted again for each invocation.
#[derive(Default)]
struct TagSets {
    known: Vec<(String, bool, InvocationTags)>,
}

impl TagSets {
    /// More than this many ARNs (a test calling with many) starts the cache over.
    const LIMIT: usize = 8;

    fn get(&mut self, statics: &StaticTags, arn: &str, cold_start: bool) -> InvocationTags {
        if let Some((_, _, tags)) = self.known.iter().find(|(a, c, _)| a == arn && *c == cold_start) {
            return tags.clone();
        }
        if self.known.len() >= Self::LIMIT {
            self.known.clear();
        }
        let tags = InvocationTags::new(enhanced_tags(statics, Some(arn), cold_start));
        self.known.push((arn.to_owned(), cold_start, tags.clone()));
        tags
    }
}

#[derive(Default)]
struct State {
    pending: Option<PendingInvocation>,
    /// The request whose invocation metrics already went out with a timeout flush.
    timeout_flushed: Option<String>,
}

/// Enhanced and custom metrics for one sandbox. Build with [`MetricsProcessor::new`], register
/// as a lifecycle observer.
pub struct MetricsProcessor {
    config: MetricsConfig,
    statics: StaticTags,
    stdout: Mutex<Box<dyn Write + Send>>,
    api: Option<ApiState>,
    extension: Option<DogStatsDSink>,
    /// `DD_LOCAL_TEST` with the Extension: asks it to flush after every invocation.
    extension_flush: Option<ExtensionFlush>,
    usage: Option<Arc<UsageMonitor>>,
    custom: Mutex<Vec<MetricPoint>>,
    dogstatsd: Mutex<Option<(DogStatsDServer, mpsc::Receiver<MetricPoint>)>>,
    dogstatsd_drainer: Mutex<Option<Drainer>>,
    /// DogStatsD refusals already reported in a log line.
    dogstatsd_refusals_logged: AtomicU64,
    state: Mutex<State>,
    tag_sets: Mutex<TagSets>,
    /// OOM messages in an exec child's output, per invocation (`None` without enhanced metrics).
    output_watch: Option<Arc<OutputWatch>>,
    /// `Some` when the flush strategy also flushes while invocations run (API mode only).
    during_invocations: Option<FlushesDuringInvocations>,
    pub stats: FlushStats,
}

impl MetricsProcessor {
    /// Builds the processor for `config`. In API mode the API key lookup starts now, in the
    /// background (call inside the tokio runtime, before the handler's init).
    pub fn new(config: MetricsConfig, env: &crate::config::Environment, outputs: MetricsOutputs) -> Arc<Self> {
        let statics = StaticTags {
            memory_mb: config.memory_mb,
            function_version: config.function_version.clone(),
            runtime: resolve_runtime(config.execution_env.as_deref(), &outputs.os_release),
        };
        let strategy = match &config.flush_strategy {
            Ok(strategy) => *strategy,
            Err(refused) => {
                if config.transport == Transport::DatadogApi {
                    tracing::warn!("{refused}");
                }
                FlushStrategy::Default
            }
        };
        let api = (config.transport == Transport::DatadogApi).then(|| {
            let settings = outputs.api_settings.clone().unwrap_or_else(|| ApiSinkSettings::new(""));
            let settings = ApiSinkSettings {
                base_url: config.api_base_url(),
                ..settings
            };
            DatadogApiSink::new(settings).map(|sink| ApiState {
                sink,
                key: Arc::new(OnceCell::new()),
                key_settings: ApiKeySettings::from_env(env, config.fips_mode),
                override_key: Mutex::new(None),
                aggregator: Mutex::new(Aggregator::default()),
                constant_tags: config.api_constant_tags(),
                schedule: Mutex::new(FlushSchedule::new(strategy)),
            })
        });
        let api = match api {
            Some(Ok(state)) => Some(state),
            Some(Err(err)) => {
                tracing::error!("{err}; custom metrics will be dropped");
                None
            }
            None => None,
        };
        let extension = (config.transport == Transport::Extension)
            .then(|| DogStatsDSink::new(outputs.extension_dogstatsd))
            .and_then(|r| {
                r.map_err(|e| tracing::error!("cannot open a UDP socket towards the Datadog Extension: {e}"))
                    .ok()
            });
        let extension_flush = (config.transport == Transport::Extension && config.local_test)
            .then(|| ExtensionFlush::new(outputs.extension_lifecycle))
            .and_then(|r| {
                r.map_err(|e| tracing::error!("DD_LOCAL_TEST: cannot build the Extension flush client: {e}"))
                    .ok()
            });
        let usage = outputs
            .proc
            .filter(|_| config.enhanced_metrics)
            .map(|reader| UsageMonitor::new(reader, std::process::id()));
        if !config.site_is_known() && config.datadog_host.is_none() && config.transport == Transport::DatadogApi {
            tracing::warn!(
                "DD_SITE={} is not a Datadog site I know; sending to https://api.{} anyway",
                config.site,
                config.site
            );
        }
        let output_watch = config
            .enhanced_metrics
            .then(|| OutputWatch::new(enhanced::OUTPUT_OOM_NEEDLES, |line| enhanced::oom_in_output(line).is_some()));
        let period_during_invocations = strategy.during_invocations().filter(|_| api.is_some());
        let processor = Arc::new(Self {
            config,
            statics,
            stdout: Mutex::new(outputs.stdout),
            api,
            extension,
            extension_flush,
            usage,
            custom: Mutex::new(Vec::new()),
            dogstatsd: Mutex::new(None),
            dogstatsd_drainer: Mutex::new(None),
            dogstatsd_refusals_logged: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            tag_sets: Mutex::new(TagSets::default()),
            output_watch,
            during_invocations: period_during_invocations.map(|_| FlushesDuringInvocations {
                in_flight: AtomicUsize::new(0),
                sending: tokio::sync::Mutex::new(()),
            }),
            stats: FlushStats::default(),
        });
        if let Some(period) = period_during_invocations {
            processor.start_flushing_during_invocations(period);
        }
        processor.start_api_key_fetch();
        if let Some(usage) = &processor.usage {
            if tokio::runtime::Handle::try_current().is_ok() {
                usage.spawn_sampler();
            }
        }
        processor
    }

    pub fn config(&self) -> &MetricsConfig {
        &self.config
    }

    /// The timer of `end,<ms>` and `continuously,<ms>`, on the runtime the processor is built on
    /// (the telemetry thread, which a running handler does not block).
    fn start_flushing_during_invocations(self: &Arc<Self>, period: std::time::Duration) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let processor = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(processor) = processor.upgrade() else { return };
                processor.flush_during_invocation().await;
            }
        });
    }

    /// One tick of that timer: the points so far go out, if an invocation is running.
    async fn flush_during_invocation(&self) {
        let Some(during) = &self.during_invocations else { return };
        if during.in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
        let _sending = during.sending.lock().await;
        // Looked at again under the lock: an invocation that ended meanwhile may be at `/next`.
        if during.in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
        let custom = self.collect_custom();
        self.flush_api(custom, FlushCause::DuringInvocation).await;
    }

    /// What an exec child's output copy shows its lines to, so an OOM message counts in the
    /// invocation's (or init's) `out_of_memory`.
    pub fn output_watch(&self) -> Option<Arc<OutputWatch>> {
        self.output_watch.clone()
    }

    /// Starts `api_key::fetch` in the background (API mode only), so it runs concurrently
    /// with the handler's init; the first flush waits for it.
    fn start_api_key_fetch(&self) {
        let Some(api) = &self.api else { return };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let cell = Arc::clone(&api.key);
        let settings = api.key_settings.clone();
        tokio::spawn(async move {
            cell.get_or_init(|| resolve_key(settings)).await;
        });
    }

    /// Replaces the API key at run time (the seed lets the handler do this).
    pub fn override_api_key(&self, key: ApiKey) {
        if let Some(api) = &self.api {
            if let Ok(mut slot) = api.override_key.lock() {
                *slot = Some(key);
            }
        }
    }

    /// Starts the DogStatsD server for exec children on `addr` (127.0.0.1:8125 in production).
    /// Not started with the Extension, which owns that port; a bind failure is returned for the
    /// caller to log, and the function keeps serving.
    pub fn start_dogstatsd(&self, addr: SocketAddr) -> Result<Option<SocketAddr>, BindError> {
        if self.config.transport == Transport::Extension {
            return Ok(None);
        }
        let (tx, rx) = mpsc::channel(DOGSTATSD_QUEUE);
        let server = DogStatsDServer::start(addr, tx)?;
        let local = server.local_addr;
        if let Ok(mut slot) = self.dogstatsd_drainer.lock() {
            *slot = Some(server.drainer());
        }
        if let Ok(mut slot) = self.dogstatsd.lock() {
            *slot = Some((server, rx));
        }
        Ok(Some(local))
    }

    /// The seed's `lambda_metric`: validated, then kept for the next flush.
    pub fn lambda_metric(&self, name: &str, value: MetricValue, tags: &[String], timestamp: Option<f64>) -> Result<(), CustomMetricError> {
        let point = lambda_metric(name, value, tags, timestamp, now_epoch_seconds())?;
        self.push_custom(vec![point]);
        Ok(())
    }

    fn push_custom(&self, points: Vec<MetricPoint>) {
        let Ok(mut pending) = self.custom.lock() else { return };
        pending.extend(points);
        if pending.len() > MAX_PENDING_CUSTOM {
            let excess = pending.len() - MAX_PENDING_CUSTOM;
            pending.drain(..excess);
            self.stats.dropped.fetch_add(excess as u64, Ordering::Relaxed);
            tracing::warn!("dropped the {excess} oldest custom metric points: more than {MAX_PENDING_CUSTOM} waited for a flush");
        }
    }

    /// The custom points of this flush: `lambda_metric` calls and every DogStatsD datagram
    /// received so far (the server first reads what waits in its socket).
    fn collect_custom(&self) -> Vec<MetricPoint> {
        let drainer = self.dogstatsd_drainer.lock().ok().and_then(|d| d.clone());
        if let Some(drainer) = drainer {
            drainer.drain();
        }
        self.take_custom()
    }

    fn take_custom(&self) -> Vec<MetricPoint> {
        let mut points = self.custom.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        if let Ok(mut slot) = self.dogstatsd.lock() {
            if let Some((server, rx)) = slot.as_mut() {
                while let Ok(point) = rx.try_recv() {
                    points.push(point);
                }
                self.log_dogstatsd_refusals(server);
            }
        }
        points
    }

    /// One warning per flush that saw new refused DogStatsD lines, so a child sending garbage
    /// learns why its metrics are missing (the counters only grow).
    fn log_dogstatsd_refusals(&self, server: &DogStatsDServer) {
        let refused = server.stats.rejected();
        let logged = self.dogstatsd_refusals_logged.swap(refused, Ordering::Relaxed);
        if refused > logged {
            tracing::warn!(
                "DogStatsD: refused {} line(s) since the last flush; refused so far by reason: {}",
                refused - logged,
                server.stats.refusals()
            );
        }
    }

    /// Turns computed metrics into points, keeping only those this transport should send.
    fn route(&self, measured: Vec<Measured>, tags: &InvocationTags, timestamp: i64) -> Vec<MetricPoint> {
        if !self.config.enhanced_metrics {
            return Vec::new();
        }
        let InvocationTags { base: tags, with_layer } = tags;
        measured
            .into_iter()
            .filter(|m| m.metric.sent_by_bootstrap(self.config.transport, m.reason))
            .filter(|m| !(self.config.http_errors_counted_by_extension && m.reason == enhanced::Reason::HttpServerError))
            .map(|m| {
                let all = if m.extra_tags.is_empty() {
                    Arc::clone(with_layer)
                } else {
                    let mut all = tags.to_vec();
                    all.extend(m.extra_tags);
                    all.push(layer_tag());
                    all.into()
                };
                MetricPoint::new(m.metric.name(), m.value, timestamp, all)
            })
            .collect()
    }

    fn pending_post_runtime(&self, state: &mut State) -> Vec<MetricPoint> {
        let Some(p) = state.pending.take() else { return Vec::new() };
        let max_memory = self.usage.as_ref().map_or(0, |u| u.max_memory_bytes());
        let measured = enhanced::post_runtime_metrics(
            p.answered.duration_since(&p.received),
            p.flushed.duration_since(&p.received),
            self.config.memory_mb,
            max_memory,
        );
        self.route(measured, &p.tags, p.timestamp)
    }

    fn on_init(&self, init: &InitReport) -> Vec<MetricPoint> {
        let tags = InvocationTags::new(enhanced_tags(&self.statics, None, true));
        let output_oom = self
            .output_watch
            .as_ref()
            .and_then(|w| enhanced::oom_in_output_lines(&w.take_unattributed()));
        self.route(enhanced::init_metrics(init, output_oom), &tags, epoch_seconds(init.finished.wall))
    }

    fn invocation_tags(&self, arn: &str, cold_start: bool) -> InvocationTags {
        match self.tag_sets.lock() {
            Ok(mut sets) => sets.get(&self.statics, arn, cold_start),
            Err(_) => InvocationTags::new(enhanced_tags(&self.statics, Some(arn), cold_start)),
        }
    }

    fn on_invocation(&self, report: &InvocationReport) -> (Vec<MetricPoint>, Option<InvocationTags>) {
        if !self.config.enhanced_metrics {
            return (Vec::new(), None);
        }
        let arn = &report.invocation.context.invoked_function_arn;
        let tags = self.invocation_tags(arn, report.cold_start);
        let mut facts = enhanced::outcome_facts(report);
        if let Some(watch) = &self.output_watch {
            let lines = watch.take(&report.invocation.context.request_id);
            facts.oom = enhanced::merge_oom(facts.oom, enhanced::oom_in_output_lines(&lines));
        }
        let mut measured = enhanced::invocation_metrics(report, &facts);
        let already_flushed = self.state.lock().is_ok_and(|mut s| {
            s.timeout_flushed
                .take()
                .is_some_and(|id| id == report.invocation.context.request_id)
        });
        if already_flushed {
            measured.retain(|m| m.metric != enhanced::EnhancedMetric::Invocations);
        }
        if let Some(usage) = &self.usage {
            measured.extend(usage.window_metrics());
        }
        (self.route(measured, &tags, epoch_seconds(report.received.wall)), Some(tags))
    }

    /// Sends enhanced points and custom points where the transport says.
    async fn flush(&self, enhanced_points: Vec<MetricPoint>, custom: Vec<MetricPoint>, cause: FlushCause) {
        let now = now_epoch_seconds();
        match self.config.transport {
            Transport::Extension => {
                if let Some(sink) = &self.extension {
                    sink.send(&enhanced_points, now);
                    sink.send(&custom, now);
                } else {
                    self.stats.dropped.fetch_add(custom.len() as u64, Ordering::Relaxed);
                }
            }
            Transport::Forwarder => {
                // In the order the seed prints them: `invocations` (sent as the handler starts),
                // the handler's own metrics, then what is known after it returned.
                let split = enhanced_points
                    .iter()
                    .position(|p| p.name == enhanced::EnhancedMetric::Invocations.name())
                    .map_or(0, |i| i + 1);
                let mut all = enhanced_points;
                let after = all.split_off(split);
                all.extend(custom);
                all.extend(after);
                self.write_lines(&all);
            }
            Transport::NoMetrics => {
                self.write_lines(&enhanced_points);
                if !custom.is_empty() {
                    tracing::debug!(
                        "FIPS mode without the Extension or DD_FLUSH_TO_LOG: {} custom metric points dropped",
                        custom.len()
                    );
                    self.stats.dropped.fetch_add(custom.len() as u64, Ordering::Relaxed);
                }
            }
            Transport::DatadogApi => {
                // The seed prints enhanced metrics for the Forwarder even in API mode.
                self.write_lines(&enhanced_points);
                self.flush_api(custom, cause).await;
            }
        }
    }

    fn write_lines(&self, points: &[MetricPoint]) {
        if points.is_empty() {
            return;
        }
        let Ok(mut out) = self.stdout.lock() else { return };
        match forwarder_lines::write_lines(&mut *out, points) {
            Ok(()) => {
                self.stats.lines_written.fetch_add(points.len() as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!("cannot write {} metric lines to stdout: {e}", points.len()),
        }
    }

    /// Aggregates the custom points; posts everything aggregated when the flush strategy says
    /// it is time (or `cause` forces it).
    async fn flush_api(&self, custom: Vec<MetricPoint>, cause: FlushCause) {
        let Some(api) = &self.api else {
            self.stats.dropped.fetch_add(custom.len() as u64, Ordering::Relaxed);
            return;
        };
        let now = std::time::SystemTime::now();
        let due = cause.is_forced() || api.schedule.lock().map_or(true, |schedule| schedule.is_due(now));
        let series = {
            let Ok(mut aggregator) = api.aggregator.lock() else { return };
            for point in &custom {
                aggregator.add(point);
            }
            let dropped = aggregator.take_dropped();
            if dropped > 0 {
                self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
                tracing::warn!("metrics buffer full: dropped the {dropped} oldest points");
            }
            if !due {
                return;
            }
            aggregator.drain()
        };
        if series.is_empty() {
            // Nothing went out: the next point need not wait a period.
            return;
        }
        if let Ok(mut schedule) = api.schedule.lock() {
            schedule.flushed(now);
        }
        let points: u64 = series.iter().map(|s| s.values.len() as u64).sum();
        let override_key = api.override_key.lock().ok().and_then(|k| k.clone());
        let key = match override_key {
            Some(key) => Some(key),
            // Boxed, as the send below: their futures (the AWS SDK's, reqwest's) are kilobytes,
            // and inline they would make every invocation's observer future that size.
            None => api
                .key
                .get_or_init(|| Box::pin(resolve_key(api.key_settings.clone())))
                .await
                .clone(),
        };
        let Some(key) = key else {
            self.stats.dropped.fetch_add(points, Ordering::Relaxed);
            tracing::debug!("no Datadog API key: {points} custom metric points dropped");
            return;
        };
        self.stats.api_points_in_flight.fetch_add(points, Ordering::Relaxed);
        let sent = Box::pin(api.sink.send(&series, &api.constant_tags, &key)).await;
        self.stats.api_points_in_flight.fetch_sub(points, Ordering::Relaxed);
        match sent {
            Ok(()) => {
                self.stats.api_points_sent.fetch_add(points, Ordering::Relaxed);
            }
            Err(err) => {
                self.stats.api_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{err}");
                if err.keeps_points() {
                    if let Ok(mut aggregator) = api.aggregator.lock() {
                        for s in series {
                            for v in s.values {
                                aggregator.add(&MetricPoint::new(s.name.clone(), v, s.bucket, s.tags.clone()));
                            }
                        }
                    }
                } else {
                    self.stats.dropped.fetch_add(points, Ordering::Relaxed);
                }
            }
        }
    }

    async fn handle(&self, event: &LifecycleEvent) {
        match event {
            // Metrics wait for the acknowledged answer: `errors` counts one Lambda refused.
            LifecycleEvent::AnswerSent(_) => {}
            LifecycleEvent::Init(init) => {
                let points = self.on_init(init);
                let custom = self.collect_custom();
                self.flush(points, custom, FlushCause::Init).await;
            }
            LifecycleEvent::Invocation(report) => {
                if let Some(during) = &self.during_invocations {
                    let _ = during
                        .in_flight
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(1)));
                }
                let mut points = self.state.lock().map(|mut s| self.pending_post_runtime(&mut s)).unwrap_or_default();
                let (invocation_points, tags) = self.on_invocation(report);
                points.extend(invocation_points);
                if let Some(Ok(mut schedule)) = self.api.as_ref().map(|api| api.schedule.lock()) {
                    schedule.invocation(report.received.wall);
                }
                let custom = self.collect_custom();
                self.flush(points, custom, FlushCause::Invocation).await;
                if let Some(extension_flush) = &self.extension_flush {
                    extension_flush.post().await;
                }
                if let Some(during) = &self.during_invocations {
                    // A timer flush still sending finishes before the lifecycle asks `/next`.
                    drop(during.sending.lock().await);
                }
                // Without enhanced metrics there are no post-runtime metrics to send later.
                if let (Some(tags), Ok(mut state)) = (tags, self.state.lock()) {
                    state.pending = Some(PendingInvocation {
                        tags,
                        timestamp: epoch_seconds(report.received.wall),
                        received: report.received,
                        answered: report.answered,
                        flushed: Timestamp::now(),
                    });
                }
            }
            LifecycleEvent::TimeoutApproaching {
                invocation,
                received,
                cold_start,
                ..
            } => {
                let arn = invocation.context.invoked_function_arn.as_str();
                let tags = self.invocation_tags(arn, *cold_start);
                let invocations = vec![Measured {
                    metric: enhanced::EnhancedMetric::Invocations,
                    value: MetricValue::Integer(1),
                    reason: enhanced::Reason::Plain,
                    extra_tags: Vec::new(),
                }];
                let mut points = self.state.lock().map(|mut s| self.pending_post_runtime(&mut s)).unwrap_or_default();
                points.extend(self.route(invocations, &tags, epoch_seconds(received.wall)));
                if let Ok(mut state) = self.state.lock() {
                    state.timeout_flushed = Some(invocation.context.request_id.clone());
                }
                let custom = self.collect_custom();
                self.flush(points, custom, FlushCause::TimeoutApproaching).await;
            }
            LifecycleEvent::Shutdown { .. } => {
                let points = self.state.lock().map(|mut s| self.pending_post_runtime(&mut s)).unwrap_or_default();
                let custom = self.collect_custom();
                self.flush(points, custom, FlushCause::Shutdown).await;
                // An earlier flush still waiting for the intake ends with the process.
                let in_flight = self.stats.api_points_in_flight.load(Ordering::Relaxed);
                if in_flight > 0 {
                    self.stats.dropped.fetch_add(in_flight, Ordering::Relaxed);
                    tracing::warn!(
                        "shutting down with {in_flight} custom metric point(s) still on their way to the Datadog API (it has not answered); they are lost"
                    );
                }
            }
        }
    }
}

/// Fetches the key, logging one clear line when it cannot be had.
async fn resolve_key(settings: ApiKeySettings) -> Option<ApiKey> {
    match api_key::fetch(&settings).await {
        Ok(key) => Some(key),
        // Not configuring a key is a choice (e.g. a function tried without Datadog): a warning.
        Err(err @ api_key::ApiKeyError::NotConfigured) => {
            tracing::warn!("{err}; metrics for the Datadog API will be dropped, the function keeps serving");
            None
        }
        Err(err) => {
            tracing::error!("cannot get the Datadog API key: {err}; custom metrics will be dropped, the function keeps serving");
            None
        }
    }
}

impl LifecycleObserver for MetricsProcessor {
    fn observe<'a>(&'a self, event: &'a LifecycleEvent) -> BoxFuture<'a, ()> {
        if let LifecycleEvent::AnswerSent(_) = event {
            // Nothing to do, and `handle`'s future is too big to box for nothing.
            return Box::pin(std::future::ready(()));
        }
        Box::pin(self.handle(event))
    }

    fn invocation_started(&self, _invocation: &Arc<crate::handler::Invocation>, _handler_started: Timestamp) {
        if let Some(during) = &self.during_invocations {
            during.in_flight.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod future_size {
    /// Every invocation boxes the observer's future: the API key lookup (the AWS SDK) and the
    /// intake request (reqwest) are boxed where they run, so they do not make it 13 KB.
    #[tokio::test]
    async fn the_observer_future_stays_small() {
        let env = crate::config::Environment::from_pairs([("DD_FLUSH_TO_LOG", "true")]);
        let config = super::MetricsConfig::from_env_with_extension_path(&env, std::path::Path::new("/nonexistent"));
        let processor = super::MetricsProcessor::new(config, &env, super::MetricsOutputs::default());
        let event = crate::lifecycle::LifecycleEvent::Shutdown {
            at: crate::lifecycle::Timestamp::now(),
        };
        let future = processor.handle(&event);
        assert!(std::mem::size_of_val(&future) <= 1024, "{} bytes", std::mem::size_of_val(&future));
    }
}
