//! Step-up (RFC 9470) for apps whose own HTTP stack sees the resource's 401: the
//! same reading of the challenge `Session::send` does, as the typed error.

use crate::error::AuthError;
use crate::internal::www_authenticate::{bearer_verdict, BearerVerdict};
use std::time::Duration;

impl AuthError {
    /// [`AuthError::StepUpRequired`] when the `WWW-Authenticate` values carry a Bearer
    /// `insufficient_user_authentication` challenge (RFC 9470 §3), with its
    /// `acr_values` and `max_age`; `None` for any other challenge.
    ///
    /// ```
    /// use tokenkeeper::AuthError;
    /// let challenge = r#"Bearer error="insufficient_user_authentication", acr_values="urn:mfa", max_age="300""#;
    /// let Some(AuthError::StepUpRequired { acr_values, max_age }) = AuthError::step_up_from_challenges([challenge]) else {
    ///     panic!("a step-up challenge")
    /// };
    /// assert_eq!((acr_values.as_deref(), max_age.map(|m| m.as_secs())), (Some("urn:mfa"), Some(300)));
    /// assert!(AuthError::step_up_from_challenges([r#"Bearer error="invalid_token""#]).is_none());
    /// ```
    pub fn step_up_from_challenges<'a>(www_authenticate: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        match bearer_verdict(www_authenticate) {
            BearerVerdict::StepUp {
                acr_values, max_age, ..
            } => Some(Self::step_up(acr_values, max_age)),
            _ => None,
        }
    }

    /// The error for an RFC 9470 challenge's `acr_values` and `max_age` (seconds): one
    /// mapping for this function and for a 401 answered by `Session::send`.
    pub(crate) fn step_up(acr_values: Option<String>, max_age: Option<u64>) -> Self {
        Self::StepUpRequired {
            acr_values,
            max_age: max_age.map(Duration::from_secs),
        }
    }
}
