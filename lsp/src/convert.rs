//! The front end's diagnostics as LSP diagnostics: the code, the message with the primary
//! label, notes and help, and the secondary labels as related information.

use crate::analyzed::Analyzed;
use nnc_grammar::Severity;
use tower_lsp_server::ls_types::{
    Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Uri,
};

/// Every diagnostic of the analysis, in source order. Clients that cannot show related
/// information (`related_information` false) get the secondary labels in the message.
pub fn diagnostics(analyzed: &Analyzed, uri: &Uri, related_information: bool) -> Vec<Diagnostic> {
    analyzed.analysis.diagnostics.iter().map(|d| diagnostic(analyzed, uri, d, related_information)).collect()
}

fn diagnostic(
    analyzed: &Analyzed,
    uri: &Uri,
    source: &nnc_grammar::Diagnostic,
    related_information: bool,
) -> Diagnostic {
    let mut message = source.message.clone();
    let label = source.primary.message.trim();
    if !label.is_empty() && label != source.message {
        message.push_str(&format!("\n{label}"));
    }
    if !related_information {
        for secondary in &source.secondary {
            let line = analyzed.position(secondary.span.start).line + 1;
            message.push_str(&format!("\nline {line}: {}", secondary.message));
        }
    }
    for note in &source.notes {
        message.push_str(&format!("\nnote: {note}"));
    }
    if let Some(help) = &source.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = source
        .secondary
        .iter()
        .map(|label| DiagnosticRelatedInformation {
            location: Location::new(uri.clone(), analyzed.range(label.span)),
            message: label.message.clone(),
        })
        .collect();
    Diagnostic {
        range: analyzed.range(source.span()),
        severity: Some(match source.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(source.code.as_str().to_string())),
        source: Some("nnc".to_string()),
        message,
        related_information: (related_information && !related.is_empty()).then_some(related),
        ..Diagnostic::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn secondary_labels_become_related_information_or_text() {
        let analyzed = Analyzed::new("fn f(x) = x\nfn f(y) = y\n");
        let uri = Uri::from_str("file:///dup.nn").unwrap();
        let with = diagnostics(&analyzed, &uri, true);
        assert_eq!(with.len(), 1);
        let related = with[0].related_information.as_ref().expect("the first definition is related");
        assert_eq!((related[0].location.range.start.line, related[0].message.as_str()), (0, "first defined here"));
        assert_eq!(with[0].range.start.line, 1);
        assert_eq!(with[0].code, Some(NumberOrString::String("E0103".into())));
        assert!(with[0].message.contains("help: rename one of them"), "{}", with[0].message);
        let without = diagnostics(&analyzed, &uri, false);
        assert!(without[0].related_information.is_none());
        assert!(without[0].message.contains("line 1: first defined here"), "{}", without[0].message);
    }
}
