//! What `GET /metrics` reports, in Prometheus' text format (OpenMetrics, written by the
//! Prometheus project's own `prometheus-client`): the store's numbers as `prelabel status`
//! shows them (queue depth, running executions and concurrency per service, executions by
//! status, workers by state), read at each scrape; and this process's own, observed as they
//! happen: how long each stage of an execution took (queue wait, reading or downloading the
//! item, an instance's init, the call, the whole), the instances its scheduler holds and
//! their memory, and the API's requests by route, method and status.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::work::execution::{self, Queue};
use crate::work::worker;

/// A stage of an execution, as `/metrics` names it.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Stage {
    /// From queued to claimed.
    queue_wait,
    /// The item's bytes read from the store.
    read,
    /// A linked item's bytes downloaded.
    download,
    /// A new instance started (its `init` included).
    init,
    /// The function's call (`detect`, or a transformer's `transform`).
    call,
    /// From claimed to recorded.
    total,
}

impl Stage {
    /// Reading an item's bytes: a download for a linked item.
    pub fn reading(linked: bool) -> Stage {
        if linked { Stage::download } else { Stage::read }
    }
}

/// How long ago the store's ISO 8601 time `stored` was; none for one that does not parse.
pub fn since(stored: &str) -> Option<Duration> {
    let ms = jiff::Timestamp::now().as_millisecond() - execution::stored_ms(stored)?;
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    service: String,
    stage: Stage,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds from 1 ms to about a minute, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every family, registered once; the store's gauges are set at each scrape.
pub struct Metrics {
    registry: Registry,
    stages: Histograms<StageLabels>,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<RouteLabels>,
    queued: Family<ServiceLabels, Gauge>,
    running: Family<ServiceLabels, Gauge>,
    concurrency: Family<ServiceLabels, Gauge>,
    executions: Family<StatusLabels, Gauge>,
    workers: Family<StateLabels, Gauge>,
    instances: Family<ServiceLabels, Gauge>,
    instance_memory: Family<ServiceLabels, Gauge>,
    host_memory: Gauge,
    host_memory_promised: Gauge,
    /// One scrape at a time: each clears and sets the store's gauges.
    scrape: Mutex<()>,
}

/// This process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let stages: Histograms<StageLabels> = Family::new_with_constructor(seconds);
        let request_seconds: Histograms<RouteLabels> = Family::new_with_constructor(seconds);
        let mut metrics = Metrics {
            registry: Registry::default(),
            stages,
            requests: Family::default(),
            request_seconds,
            queued: Family::default(),
            running: Family::default(),
            concurrency: Family::default(),
            executions: Family::default(),
            workers: Family::default(),
            instances: Family::default(),
            instance_memory: Family::default(),
            host_memory: Gauge::default(),
            host_memory_promised: Gauge::default(),
            scrape: Mutex::default(),
        };
        metrics.registry = metrics.registry_of_families();
        metrics
    }

    /// A registry of each family under its name, with its help.
    fn registry_of_families(&self) -> Registry {
        let metrics = self;
        let mut registry = Registry::with_prefix("prelabel");
        let r = &mut registry;
        r.register(
            "queue_depth",
            "Queued executions per service (the store's)",
            metrics.queued.clone(),
        );
        r.register(
            "running_executions",
            "Running executions per service, on every worker (the store's)",
            metrics.running.clone(),
        );
        r.register(
            "service_concurrency",
            "How many executions of a service may run at once",
            metrics.concurrency.clone(),
        );
        r.register(
            "executions",
            "Executions in the store by status",
            metrics.executions.clone(),
        );
        r.register(
            "workers",
            "Workers by state: running, lost (lease ran out), stopped (the last few)",
            metrics.workers.clone(),
        );
        r.register(
            "execution_stage_seconds",
            "How long each stage of an execution took, on this process's scheduler",
            metrics.stages.clone(),
        );
        r.register(
            "instances",
            "Instances this process's scheduler holds, per service",
            metrics.instances.clone(),
        );
        r.register(
            "instance_memory_bytes",
            "Memory charged to those instances against their caps, per service",
            metrics.instance_memory.clone(),
        );
        r.register(
            "host_memory_bytes",
            "Memory this process's scheduler may promise its instances (--host-memory)",
            metrics.host_memory.clone(),
        );
        r.register(
            "host_memory_promised_bytes",
            "Memory promised to the instances it holds: the sum of their caps",
            metrics.host_memory_promised.clone(),
        );
        r.register(
            "api_requests",
            "API requests answered, by route, method and status",
            metrics.requests.clone(),
        );
        r.register(
            "api_request_seconds",
            "How long API requests took to answer (to the first byte), by route and method",
            metrics.request_seconds.clone(),
        );
        registry
    }

    /// One stage of an execution of `service`.
    pub fn stage(&self, service: &str, stage: Stage, took: Duration) {
        let labels = StageLabels {
            service: service.to_string(),
            stage,
        };
        self.stages
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// One API request: `route` is the matched route (`/api/items/{id}`), never the path, so
    /// that the series are as many as the routes.
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let (method, route) = (method.to_string(), route.to_string());
        self.request_seconds
            .get_or_create(&RouteLabels {
                method: method.clone(),
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// The host's budget: what it may promise, and what its instances hold of it.
    pub fn host_memory(&self, budget: u64, promised: u64) {
        self.host_memory
            .set(i64::try_from(budget).unwrap_or(i64::MAX));
        self.host_memory_promised
            .set(i64::try_from(promised).unwrap_or(i64::MAX));
    }

    /// The text a scrape answers, with the store's gauges set from what `prelabel status`
    /// reads: the queues, the executions by status, the workers' states (`running`, `lost`,
    /// `stopped`), one each.
    pub fn render(
        &self,
        queues: &[Queue],
        executions: &BTreeMap<String, i64>,
        worker_states: &[&str],
    ) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        let by_service = |family: &Family<ServiceLabels, Gauge>, service: &str, value: i64| {
            family
                .get_or_create(&ServiceLabels {
                    service: service.to_string(),
                })
                .set(value);
        };
        for family in [&self.queued, &self.running, &self.concurrency] {
            family.clear();
        }
        for q in queues {
            by_service(&self.queued, &q.service, q.queued);
            by_service(&self.running, &q.service, q.running);
            by_service(&self.concurrency, &q.service, i64::from(q.concurrency));
        }
        self.executions.clear();
        for (status, n) in executions {
            let labels = StatusLabels {
                status: status.clone(),
            };
            self.executions.get_or_create(&labels).set(*n);
        }
        self.workers.clear();
        for state in worker_states {
            let labels = StateLabels {
                state: state.to_string(),
            };
            self.workers.get_or_create(&labels).inc();
        }
        self.instances.clear();
        self.instance_memory.clear();
        for (service, bytes) in worker::held() {
            let labels = ServiceLabels { service };
            self.instances.get_or_create(&labels).inc();
            self.instance_memory
                .get_or_create(&labels)
                .inc_by(bytes as i64);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
