//! Bodies and commands of the label routes (docs/support.md).

use super::rooms::optional_text;
use crate::error::{ApiError, ApiResult};
use crate::store::labels::label_name;
use crate::store::sla::SlaPolicy;
use crate::store::{Label, LabelChange};
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
    /// Targets conversations take when the label is put on them.
    pub sla: Option<SlaPolicy>,
}

/// A label's color, checked: `#rrggbb` (kept in lowercase).
fn color(raw: Option<String>) -> ApiResult<Option<String>> {
    match raw {
        None => Ok(None),
        Some(c)
            if c.len() == 7
                && c.starts_with('#')
                && c[1..].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(Some(c.to_ascii_lowercase()))
        }
        Some(_) => Err(ApiError::invalid("color", "must be #rrggbb")),
    }
}

/// PATCH /labels/{name}: absent fields stay, null removes one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchLabel {
    #[serde(default, deserialize_with = "super::present")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    pub color: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    pub sla: Option<Option<SlaPolicy>>,
}

impl TryFrom<PatchLabel> for LabelChange {
    type Error = ApiError;

    fn try_from(body: PatchLabel) -> ApiResult<LabelChange> {
        let change = LabelChange {
            description: body
                .description
                .map(|d| optional_text("description", d.as_deref(), 200))
                .transpose()?,
            color: body.color.map(color).transpose()?,
            sla: body
                .sla
                .map(|sla| sla.map(SlaPolicy::validated).transpose())
                .transpose()?,
        };
        if change == LabelChange::default() {
            return Err(ApiError::invalid(
                "body",
                "description, color or sla to change",
            ));
        }
        Ok(change)
    }
}

impl TryFrom<NewLabel> for Label {
    type Error = ApiError;

    fn try_from(body: NewLabel) -> ApiResult<Label> {
        Ok(Label {
            name: label_name("name", &body.name)?,
            description: optional_text("description", body.description.as_deref(), 200)?,
            color: color(body.color)?,
            sla: body.sla.map(SlaPolicy::validated).transpose()?,
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
                sla: None,
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
