//! Bodies and commands of the label routes (docs/support.md).

use super::rooms::optional_text;
use crate::error::{ApiError, ApiResult};
use crate::store::Label;
use crate::store::labels::label_name;
use serde::Deserialize;

/// Labels one call adds.
pub const MAX_LABELS_PER_CALL: usize = 10;

/// POST /labels.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLabel {
    pub name: String,
    pub description: Option<String>,
    /// `#rrggbb`.
    pub color: Option<String>,
}

impl TryFrom<NewLabel> for Label {
    type Error = ApiError;

    fn try_from(body: NewLabel) -> ApiResult<Label> {
        let color = match body.color {
            None => None,
            Some(c)
                if c.len() == 7
                    && c.starts_with('#')
                    && c[1..].bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Some(c.to_ascii_lowercase())
            }
            Some(_) => return Err(ApiError::invalid("color", "must be #rrggbb")),
        };
        Ok(Label {
            name: label_name("name", &body.name)?,
            description: optional_text("description", body.description.as_deref(), 200)?,
            color,
            created_at: crate::time::now_string(),
        })
    }
}

/// POST /chat/conversations/{id}/labels.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddLabels {
    pub labels: Vec<String>,
}

impl AddLabels {
    /// The names, checked (1 to 10, each a label's spelling; repeats once).
    pub fn labels(&self) -> ApiResult<Vec<String>> {
        if self.labels.is_empty() || self.labels.len() > MAX_LABELS_PER_CALL {
            return Err(ApiError::invalid(
                "labels",
                format!("1 to {MAX_LABELS_PER_CALL} label names"),
            ));
        }
        let mut names = Vec::new();
        for raw in &self.labels {
            let name = label_name("labels", raw)?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_label_is_checked() {
        let label = |name: &str, color: Option<&str>| {
            Label::try_from(NewLabel {
                name: name.into(),
                description: None,
                color: color.map(Into::into),
            })
        };
        assert_eq!(
            label("vip", Some("#FFAA00")).unwrap().color.as_deref(),
            Some("#ffaa00")
        );
        for bad in ["red", "#ffaa0", "#ffaa00 ", "ffaa00#", "#gggggg"] {
            assert!(label("vip", Some(bad)).is_err(), "{bad}");
        }
        assert!(label("VIP", None).is_err());
        let add = |labels: Vec<&str>| {
            AddLabels {
                labels: labels.into_iter().map(Into::into).collect(),
            }
            .labels()
        };
        assert_eq!(add(vec!["vip", "vip"]).unwrap(), ["vip"]);
        assert!(add(vec![]).is_err());
        assert!(add(vec!["a"; 11]).is_err());
        assert!(add(vec!["Vip"]).is_err());
    }
}
