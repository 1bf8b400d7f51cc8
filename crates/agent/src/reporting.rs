//! Posture reports: queued in the outbox, then sent in batches (or one by one when a batch is
//! refused whole).

use keywarden_protocol::{
    ErrorCode, Report, ReportAck, ReportBatch, ReportBatchAck, ReportOutcome,
};

use crate::client::Client;
use crate::config::Paths;
use crate::identity::DeviceKey;
use crate::outbox::Outbox;
use crate::{now_ms, outbox, Agent, Error, FlushOutcome, Result, AGENT_VERSION};

impl Agent {
    /// The outbox.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.paths.outbox_dir())
    }

    /// Collect posture and key inventory into a new report and put it in the outbox.
    pub fn queue_report(&self) -> Result<Report> {
        let now = now_ms();
        let keys = match self.keyring.list() {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "key inventory failed; reporting no keys");
                Vec::new()
            }
        };
        let report = Report {
            // Time-ordered (UUIDv7): a laptop's reports reach the service's index of reports in
            // the order they were made, so each stored batch adds to the end of the laptop's
            // range instead of touching pages all over it. The report already carries its time.
            report_id: uuid::Uuid::now_v7().to_string(),
            created_at_ms: now,
            agent_version: AGENT_VERSION.to_owned(),
            posture: keywarden_posture::collect(now),
            keys,
        };
        self.outbox().push(&report)?;
        Ok(report)
    }

    /// Send every pending report, oldest first, as few signed requests as the batch limits
    /// allow (normally one). A report's file is removed only after the service acknowledged
    /// it; one the service refused for good is moved to `outbox/rejected/` and kept. Stops at
    /// the first outage (the rest wait). A service without the batch endpoint (an older one),
    /// or one that refuses a batch as a whole, gets the reports one per request instead.
    pub fn flush(&self) -> Result<FlushOutcome> {
        let cfg = self.config()?;
        let key = DeviceKey::load(&self.paths)?;
        let sender = Sender {
            client: self.client(&cfg.server_url)?,
            paths: &self.paths,
            key: &key,
            device_id: &cfg.device_id,
            outbox: self.outbox(),
        };
        let mut outcome = FlushOutcome::default();
        let pending = sender.outbox.pending()?;
        let mut rest: &[outbox::Pending] = &pending;
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(batch_len(rest));
            let stop = match sender.batch(chunk) {
                Ok(ack) => sender.apply(chunk, &ack, &mut outcome)?,
                Err(e) if batch_refused_whole(&e) => {
                    tracing::info!(error = %e, "batch not taken; sending reports one by one");
                    let mut stop = None;
                    for (i, item) in chunk.iter().enumerate() {
                        if let Some(why) = sender.single(item, &mut outcome)? {
                            stop = Some((why, i));
                            break;
                        }
                    }
                    stop.map(|(why, i)| {
                        outcome.pending = rest.len() - i;
                        why
                    })
                }
                Err(e) => {
                    outcome.pending = rest.len();
                    outcome.retry_after_secs = e.retry_after_secs();
                    Some(e.to_string())
                }
            };
            if let Some(why) = stop {
                if outcome.pending == 0 {
                    outcome.pending = rest.len();
                }
                outcome.stopped_by = Some(why);
                break;
            }
            rest = after;
        }
        Ok(outcome)
    }

    /// Queue a fresh report and send the outbox.
    pub fn report(&self) -> Result<(Report, FlushOutcome)> {
        let report = self.queue_report()?;
        let outcome = self.flush()?;
        Ok((report, outcome))
    }
}

/// Largest batch body the agent sends (the service takes up to 8 MiB).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// How many of the oldest pending reports go into the next batch: at most
/// [`keywarden_protocol::MAX_REPORTS_PER_BATCH`], and not more than [`MAX_BATCH_BYTES`] of
/// them (always at least one).
fn batch_len(pending: &[outbox::Pending]) -> usize {
    let mut bytes = 0;
    let mut n = 0;
    for p in pending
        .iter()
        .take(keywarden_protocol::MAX_REPORTS_PER_BATCH)
    {
        bytes += serde_json::to_vec(&p.report).map(|v| v.len()).unwrap_or(0) + 1;
        if n > 0 && bytes > MAX_BATCH_BYTES {
            break;
        }
        n += 1;
    }
    n.max(1)
}

/// True when the service did not take a batch as a whole but may take its reports one by one:
/// it has no batch endpoint (an older service), or refused the batch's shape or size.
fn batch_refused_whole(e: &Error) -> bool {
    match e {
        Error::Service { status, code, .. } => {
            (*status == 404 && *code == ErrorCode::NoRoute) || *status == 400 || *status == 413
        }
        Error::BadResponse { status, .. } => *status == 404 || *status == 413,
        _ => false,
    }
}

/// What sending the outbox needs.
struct Sender<'a> {
    client: Client,
    paths: &'a Paths,
    key: &'a DeviceKey,
    device_id: &'a str,
    outbox: Outbox,
}

impl Sender<'_> {
    fn batch(&self, chunk: &[outbox::Pending]) -> Result<ReportBatchAck> {
        self.client.post_signed(
            self.paths,
            self.key,
            self.device_id,
            keywarden_protocol::REPORT_BATCH_PATH,
            &ReportBatch {
                reports: chunk.iter().map(|p| p.report.clone()).collect(),
            },
        )
    }

    /// Act on a batch's answer: remove what was acknowledged, set aside what was refused.
    /// Returns why to stop when the answer does not match the batch (then nothing is removed).
    fn apply(
        &self,
        chunk: &[outbox::Pending],
        ack: &ReportBatchAck,
        outcome: &mut FlushOutcome,
    ) -> Result<Option<String>> {
        let matches = ack.results.len() == chunk.len()
            && ack
                .results
                .iter()
                .zip(chunk)
                .enumerate()
                .all(|(i, (r, p))| {
                    usize::try_from(r.index).is_ok_and(|x| x == i)
                        && (r.report_id.as_deref() == Some(p.report.report_id.as_str())
                            || (r.outcome == ReportOutcome::Rejected && r.report_id.is_none()))
                });
        if !matches {
            return Ok(Some(format!(
                "service answered a batch of {} report(s) with {} result(s) that do not match it",
                chunk.len(),
                ack.results.len()
            )));
        }
        for (r, item) in ack.results.iter().zip(chunk) {
            match r.outcome {
                ReportOutcome::Stored | ReportOutcome::AlreadyStored => {
                    self.outbox.acknowledge(&item.path)?;
                    outcome.sent.push(ReportAck {
                        report_id: item.report.report_id.clone(),
                        newly_stored: r.outcome == ReportOutcome::Stored,
                    });
                }
                ReportOutcome::Rejected => {
                    self.outbox.reject(&item.path)?;
                    let why = r
                        .error
                        .as_ref()
                        .map(|e| format!("{} [{}]", e.message, e.code))
                        .unwrap_or_else(|| "refused without a reason".to_owned());
                    outcome.rejected.push((item.report.report_id.clone(), why));
                }
            }
        }
        Ok(None)
    }

    /// Send one report on its own (the endpoint older services have). Returns why to stop.
    fn single(&self, item: &outbox::Pending, outcome: &mut FlushOutcome) -> Result<Option<String>> {
        let sent: Result<ReportAck> = self.client.post_signed(
            self.paths,
            self.key,
            self.device_id,
            "/api/v1/agent/reports",
            &item.report,
        );
        match sent {
            Ok(ack) if ack.report_id == item.report.report_id => {
                self.outbox.acknowledge(&item.path)?;
                outcome.sent.push(ack);
                Ok(None)
            }
            Ok(ack) => Ok(Some(format!(
                "service acknowledged {} for {}",
                ack.report_id, item.report.report_id
            ))),
            Err(Error::Service {
                status,
                code,
                message,
                ..
            }) if (400..500).contains(&status)
                && status != 401
                && status != 409
                && status != 429 =>
            {
                self.outbox.reject(&item.path)?;
                outcome
                    .rejected
                    .push((item.report.report_id.clone(), format!("{message} [{code}]")));
                Ok(None)
            }
            Err(e) => {
                outcome.retry_after_secs = e.retry_after_secs();
                Ok(Some(e.to_string()))
            }
        }
    }
}
