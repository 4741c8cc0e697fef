//! The development server's admin API (`/_admin/...`, see devserver/src/admin.rs)
//! and a plain token request, for the peer and for the token round-trip baseline.

use std::time::{Duration, SystemTime};

pub const CLIENT_ID: &str = "demo-client";
pub const CLIENT_SECRET: &str = "demo-secret";

/// A running development server, driven over HTTP.
#[derive(Clone)]
pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Server {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.base)
    }

    pub fn resource(&self) -> String {
        format!("{}/api/data", self.base)
    }

    /// Token requests the server has answered since it started (or since a reset).
    pub async fn token_requests(&self) -> Result<u64, BoxError> {
        let body = self
            .http
            .get(format!("{}/_admin/stats", self.base))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let stats: serde_json::Value = serde_json::from_str(&body)?;
        stats["token_requests"]
            .as_u64()
            .ok_or_else(|| "stats without token_requests".into())
    }

    /// Revokes one access token at the server (what a logout elsewhere does).
    pub async fn revoke(&self, token: &str) -> Result<(), BoxError> {
        self.http
            .post(format!("{}/_admin/revoke-token", self.base))
            .query(&[("token", token)])
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// One client-credentials token request, as a hand-written cache makes it:
    /// the token and its expiry.
    pub async fn fetch_token(&self) -> Result<(String, SystemTime), BoxError> {
        let body = self
            .http
            .post(self.token_endpoint())
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let json: serde_json::Value = serde_json::from_str(&body)?;
        let token = json["access_token"].as_str().ok_or("no access_token")?.to_owned();
        let lifetime = Duration::from_secs(json["expires_in"].as_u64().unwrap_or(3600));
        Ok((token, SystemTime::now() + lifetime))
    }
}
