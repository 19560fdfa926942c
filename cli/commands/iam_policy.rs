//! `linkplan iam-policy`: prints the IAM policy that allows every AWS call linkplan makes, and
//! nothing else. The actions come from `linkplan_aws::iam`, the one list of them.

use linkplan_aws::iam::{self, PolicyOptions};

use crate::args::IamPolicyArgs;
use crate::error::CliError;
use crate::exit;

pub fn run(args: &IamPolicyArgs) -> Result<u8, CliError> {
    let options = PolicyOptions {
        state_bucket: args.state_bucket.clone(),
    };
    let mut text = serde_json::to_string_pretty(&iam::policy(&options))
        .map_err(|e| CliError::new(format!("failed to format the IAM policy: {e}")))?;
    text.push('\n');
    super::write_stdout(text.as_bytes())?;
    Ok(exit::OK)
}
