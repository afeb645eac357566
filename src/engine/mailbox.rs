//! Draining the mailbox at a tick boundary, and config reload.

use std::collections::HashSet;

use serde_json::json;

use super::Engine;
use crate::compiler;
use crate::config::{Config, ConfigError};
use crate::control::actions::{self, Action, Mode, Outcome, Target};
use crate::control::mailbox::{self, Command, Disposition, Pending};
use crate::error::{Error, Result};
use crate::state::event::EventKind;

impl Engine {
    /// Apply every pending mailbox command in `issued_at` order; archive each.
    pub(crate) fn drain_mailbox(&mut self) -> Result<()> {
        self.drain(false)
    }

    /// While a stage runs, apply the pending commands that leave the running stage alone
    /// (pause, resume, stop, add_*, requeue), so a pause is in force at once and a stop says
    /// when it takes effect. The first other command (reload_config, retry_active,
    /// clear_stale_state) waits for the stage to end, and so does everything after it, to
    /// keep `issued_at` order.
    pub fn drain_mailbox_during_stage(&mut self) -> Result<()> {
        self.drain(true)
    }

    /// With lanes, while the stages of `busy` runs run: as
    /// [`Engine::drain_mailbox_during_stage`], and a `retry_active` of a task whose stage is
    /// not running is applied too.
    pub(crate) fn drain_mailbox_beside(&mut self, busy: &HashSet<String>) -> Result<()> {
        self.drain_with(Some(busy))
    }

    fn drain(&mut self, during_stage: bool) -> Result<()> {
        let nothing = HashSet::new();
        self.drain_with(during_stage.then_some(&nothing))
    }

    /// The runs a `retry_active` command would end: the named item's, or every one.
    fn retried_runs(&self, envelope: &mailbox::Envelope) -> Vec<String> {
        let named = envelope.payload_str("id").ok().flatten();
        self.state
            .activations()
            .iter()
            .filter(|a| match &named {
                Some(id) => a.subject.item().is_some_and(|(_, i)| i == id),
                None => true,
            })
            .map(|a| a.run_id.clone())
            .collect()
    }

    /// Whether a command may be applied while the stages of `busy` runs run.
    fn safe_beside(&self, envelope: &mailbox::Envelope, busy: &HashSet<String>) -> bool {
        match envelope.command {
            Command::Pause
            | Command::Resume
            | Command::Stop
            | Command::AddTask
            | Command::AddSpec
            | Command::AddIdea
            | Command::Requeue => true,
            Command::RetryActive if busy.is_empty() => false,
            Command::RetryActive => match envelope.payload_str("id").ok().flatten() {
                Some(_) => !self.retried_runs(envelope).iter().any(|r| busy.contains(r)),
                // Several active and none named: refused at once, touching nothing.
                None => self.state.activations().len() > 1,
            },
            _ => false,
        }
    }

    /// With lanes: the oldest pending command that cannot be applied beside the running
    /// stages, as what it needs — `Some(runs)`: those stages end first (`retry_active`,
    /// `clear_stale_state`); `Some([])`: the running stages finish and no new one starts
    /// (`reload_config`). `None`: nothing waits.
    pub(crate) fn mailbox_barrier(&self, busy: &HashSet<String>) -> Option<Vec<String>> {
        for pending in mailbox::pending(&self.ws, self.queue.settle()) {
            let Pending::Ready { envelope, .. } = &pending else {
                continue;
            };
            if self.safe_beside(envelope, busy) {
                continue;
            }
            return Some(match envelope.command {
                Command::RetryActive => self.retried_runs(envelope),
                Command::ClearStaleState => busy.iter().cloned().collect(),
                _ => Vec::new(),
            });
        }
        None
    }

    fn drain_with(&mut self, beside: Option<&HashSet<String>>) -> Result<()> {
        for pending in mailbox::pending(&self.ws, self.queue.settle()) {
            if let (Pending::Ready { envelope, .. }, Some(busy)) = (&pending, beside) {
                if !self.safe_beside(envelope, busy) {
                    break;
                }
            }
            match pending {
                Pending::Broken { path, error } => {
                    mailbox::archive(&self.ws, &path, Disposition::Failed, Some(&error))?;
                    self.events.emit(
                        EventKind::MailboxCommandFailed,
                        json!({"file": self.ws.rel(&path), "error": error}),
                    )?;
                }
                Pending::Ready { path, envelope, .. } => {
                    crate::workspace::failpoint::transition("mailbox.before_apply")?;
                    let outcome = Action::from_envelope(&envelope)
                        .map_err(|e| Error::refused(e, None))
                        .and_then(|action| self.apply_action(&action));
                    match outcome {
                        Ok(outcome) => {
                            crate::workspace::failpoint::transition("mailbox.after_apply")?;
                            let archived =
                                mailbox::archive(&self.ws, &path, Disposition::Processed, None)?;
                            crate::workspace::failpoint::transition("mailbox.after_archive")?;
                            mailbox::write_result(&archived, &outcome)?;
                            self.events.emit(
                                EventKind::MailboxCommandApplied,
                                json!({"command": envelope.command.as_str(),
                                       "command_id": envelope.command_id,
                                       "applied": outcome.applied, "detail": outcome.detail}),
                            )?;
                        }
                        Err(err) if err.is_fatal() => return Err(err),
                        Err(err) => {
                            let text = err.to_string();
                            mailbox::archive(&self.ws, &path, Disposition::Failed, Some(&text))?;
                            self.events.emit(
                                EventKind::MailboxCommandFailed,
                                json!({"command": envelope.command.as_str(),
                                       "command_id": envelope.command_id, "error": text}),
                            )?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_action(&mut self, action: &Action) -> Result<Outcome> {
        if matches!(action, Action::ReloadConfig) {
            let outcome = self.reload_config()?;
            // A reload that failed is a command that could not be applied (exit 1 for whoever
            // sent it), not one with nothing to do; the daemon keeps its plan either way.
            if !outcome.applied {
                return Err(Error::refused(outcome.detail, None));
            }
            return Ok(outcome);
        }
        let mut target = Target {
            ws: &self.ws,
            state: &mut self.state,
            counters: &mut self.counters,
            queue: &self.queue,
            events: &self.events,
            stop_mode: self.config.runtime.stop_mode,
        };
        actions::apply(action, &mut target, Mode::Daemon)
    }

    /// Re-read the config and recompile; a failure keeps the last-known-good plan and says so.
    pub fn reload_config(&mut self) -> Result<Outcome> {
        crate::workspace::failpoint::transition("reload.before_read")?;
        let path = self
            .options
            .config_path
            .clone()
            .unwrap_or_else(|| self.ws.config_path());
        let failed = |engine: &mut Engine, error: String| -> Result<Outcome> {
            engine.state.reload_failed(error.clone());
            engine.save_snapshot()?;
            engine.events.emit(
                EventKind::RuntimeConfigReloadFailed,
                json!({"error": error, "retained_previous_plan": true,
                       "compiled_plan_id": engine.plan.compiled_plan_id}),
            )?;
            Ok(Outcome {
                action: "reload_config",
                applied: false,
                detail: format!(
                    "reload failed, kept plan {}: {error}",
                    engine.plan.compiled_plan_id
                ),
                artifact_path: None,
            })
        };
        // A running daemon's config never falls back to the defaults: a file that is missing
        // for a moment (deleted, being replaced) would otherwise apply the default runner and
        // permission level to the next stages.
        let config = match Config::load(&path, true) {
            Ok(c) => c,
            Err(ConfigError::Missing { .. }) => {
                let error = format!(
                    "{} is missing; the running config stays in force until it is back",
                    path.display()
                );
                return failed(self, error);
            }
            Err(e) => return failed(self, e.to_string()),
        };
        let registry = match crate::runners::Registry::for_workspace(&self.ws, &config) {
            Ok(r) => r,
            Err(e) => return failed(self, e.to_string()),
        };
        let outcome =
            compiler::compile_and_persist(&self.ws, &config, self.options.mode.as_deref())?;
        let plan = match outcome.plan {
            Some(plan) if !outcome.used_last_known_good => plan,
            _ => return failed(self, outcome.diagnostics.errors.join(", ")),
        };
        self.config = config;
        self.queue.set_settle(std::time::Duration::from_millis(
            self.config.watchers.settle_ms,
        ));
        self.registry = std::sync::Arc::new(registry);
        self.plan = plan;
        let plan = self.plan_identity();
        self.state.reloaded(
            self.config.runtime.run_style,
            plan,
            self.config.fingerprint(),
        );
        self.save_snapshot()?;
        self.events.emit(
            EventKind::RuntimeConfigReloaded,
            json!({"mode_id": self.plan.mode_id, "compiled_plan_id": self.plan.compiled_plan_id}),
        )?;
        Ok(Outcome {
            action: "reload_config",
            applied: true,
            detail: format!("config reloaded; plan {}", self.plan.compiled_plan_id),
            artifact_path: None,
        })
    }
}
