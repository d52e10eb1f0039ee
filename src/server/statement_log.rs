//! Statement durations over the PostgreSQL protocol: recorded in the metrics and logged at
//! INFO when slower than `--log-slow-ms`, once the statement's last row or COPY data has been
//! sent (a query's work happens while its rows stream). Point reads are timed as such and
//! never logged.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::empty;
use futures::{Stream, StreamExt};
use pgwire::api::results::Response;

use crate::metrics::Metrics;

/// A slow statement's text is logged up to this many characters.
const SLOW_TEXT_CHARS: usize = 2000;

/// Records one statement when dropped: with its response's stream, or at once.
pub struct StatementTimer {
    started: Instant,
    metrics: Arc<Metrics>,
    log_slow: Duration,
    text: Arc<str>,
    point_read: bool,
}

impl StatementTimer {
    pub fn new(metrics: Arc<Metrics>, log_slow: Duration, text: Arc<str>) -> Self {
        Self { started: Instant::now(), metrics, log_slow, text, point_read: false }
    }

    /// The statement is a point read (answered from a feature's state for given keys).
    pub fn point_read(mut self, point_read: bool) -> Self {
        self.point_read = point_read;
        self
    }

    /// `response`, recording the statement when its rows or COPY data are all sent (or
    /// the client went away); any other response records it now.
    pub fn until_sent(self, response: Response) -> Response {
        match response {
            Response::Query(mut query) => {
                query.data_rows = self.held_by(std::mem::replace(&mut query.data_rows, Box::pin(empty())));
                Response::Query(query)
            }
            Response::CopyOut(mut copy) => {
                copy.data_stream = self.held_by(std::mem::replace(&mut copy.data_stream, Box::pin(empty())));
                Response::CopyOut(copy)
            }
            other => other,
        }
    }

    /// `stream`, owning the timer: it records when the stream is dropped.
    fn held_by<T: Send + 'static>(
        self,
        stream: Pin<Box<dyn Stream<Item = T> + Send>>,
    ) -> Pin<Box<dyn Stream<Item = T> + Send>> {
        Box::pin(stream.map(move |item| {
            let _recorded_when_dropped = &self;
            item
        }))
    }
}

impl Drop for StatementTimer {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        if self.point_read {
            self.metrics.point_read_seconds.observe(elapsed.as_secs_f64());
            return;
        }
        self.metrics.statement_seconds.observe(elapsed.as_secs_f64());
        if elapsed >= self.log_slow {
            let text = crate::sql::role::redact_passwords(&self.text);
            let statement: String = text.chars().take(SLOW_TEXT_CHARS).collect();
            tracing::info!(duration_ms = elapsed.as_millis() as u64, statement, "slow statement");
        }
    }
}
