//! `fangkong audit verify`: checks the whole audit chain and names the first broken record.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use fangkong_engine::Caller;

use crate::config::{Config, ConfigArgs};
use crate::{init_logging, print_line, serve};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify the hash chain from the last retention seal (or the first record) to the head.
    /// Exits 1 naming the first broken record if any record was altered, deleted or moved.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The head printed by an earlier verification (`SEQ:HASH`): proves that no record was
    /// removed from the end since then.
    #[arg(long, value_name = "SEQ:HASH")]
    expect_head: Option<String>,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an intact chain's verification says, or why the chain is broken: the words of
/// `audit verify`, shared by `backup` and `restore`, which verify their copies the same way.
pub(crate) fn verdict(result: &fangkong_engine::AuditVerification) -> Result<String, String> {
    if let Some(broken) = &result.broken {
        let record = broken.record().map_or("the seal".to_string(), |seq| format!("record {seq}"));
        return Err(format!("audit trail broken at {record}: {broken}"));
    }
    let sealed = result.sealed_through.map(|s| format!(" after the retention seal at record {s}")).unwrap_or_default();
    Ok(format!("audit trail intact: {} records verified{sealed}", result.checked))
}

pub async fn audit(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify(args) = command;
    let config = Config::load(&args.config)?;
    init_logging(if config.log == "info" { "warn" } else { &config.log })?;
    let engine = serve::open_engine(&config.db, config.engine()?).await?;
    let caller = Caller::system("cli:audit-verify");
    let result = engine.verify_audit(&caller).await;
    // The record at an expected earlier head, read before closing (see --expect-head).
    let expected = match &args.expect_head {
        Some(text) => {
            let (seq, hash) = text.split_once(':').unwrap_or((text, ""));
            let seq: i64 = seq.parse().map_err(|_| anyhow::anyhow!("--expect-head {text:?}: expected SEQ:HASH"))?;
            let query = fangkong_engine::AuditQuery { before_seq: Some(seq + 1), limit: 1, ..Default::default() };
            let found = engine.audit_records(&caller, &query).await?;
            Some((seq, hash.to_string(), found.first().filter(|r| r.seq == seq).map(|r| hex(&r.hash))))
        }
        None => None,
    };
    engine.shutdown().await;
    let result = result?;
    let intact = match verdict(&result) {
        Ok(intact) => intact,
        Err(broken) => {
            eprintln!("error: {broken}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some((seq, hash, found)) = expected
        && found.as_deref() != Some(hash.as_str())
    {
        eprintln!(
            "error: audit trail does not contain the expected record {seq} with hash {hash}: \
             records were removed from the end or rewritten"
        );
        return Ok(ExitCode::FAILURE);
    }
    print_line(&intact);
    print_line(&format!("head: {}:{}", result.head_seq, hex(&result.head_hash)));
    Ok(ExitCode::SUCCESS)
}
