//! Normalizing what the APIs return into the forms [`linkplan_engine::observed`] documents.

use linkplan_engine::resource::Tags;

/// Strips the `/hostedzone/` prefix Route 53 puts on zone ids in some responses.
pub fn zone_id(id: &str) -> String {
    id.trim().trim_start_matches("/hostedzone/").to_string()
}

/// Strips the `/change/` prefix of a Route 53 change id.
pub fn change_id(id: &str) -> String {
    id.trim().trim_start_matches("/change/").to_string()
}

/// Normalizes a DNS name: Route 53's `\NNN` octal escapes decoded (`\052` is `*`), lowercase,
/// without the trailing dot.
pub fn dns_name(name: &str) -> String {
    let decoded = decode_octal_escapes(name.trim());
    decoded.trim_end_matches('.').to_ascii_lowercase()
}

/// Decodes `\NNN` escapes with three octal digits, as Route 53 writes characters outside
/// `a-z0-9-_.` in record names. Anything else is kept as it is.
fn decode_octal_escapes(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Some(c) = char::from_u32(value) {
                    out.push(c);
                    i += 4;
                    continue;
                }
            }
        }
        let c = name[i..]
            .chars()
            .next()
            .expect("index is on a character boundary");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Collects EC2 tags into [`Tags`]; tags without a key are dropped.
pub fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Tags {
    tags.iter()
        .filter_map(|tag| {
            Some((
                tag.key()?.to_string(),
                tag.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Builds EC2 tags from [`Tags`].
pub fn to_ec2_tags(tags: &Tags) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.iter()
        .map(|(key, value)| {
            aws_sdk_ec2::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
        })
        .collect()
}

/// Builds a tag specification of `resource_type` with `tags`.
pub fn tag_specification(
    resource_type: aws_sdk_ec2::types::ResourceType,
    tags: &Tags,
) -> aws_sdk_ec2::types::TagSpecification {
    aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(to_ec2_tags(tags)))
        .build()
}

/// Builds an EC2 filter.
pub fn filter(
    name: &str,
    values: impl IntoIterator<Item = impl Into<String>>,
) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

/// Collects Route 53 tags into [`Tags`].
pub fn route53_tags(tags: &[aws_sdk_route53::types::Tag]) -> Tags {
    tags.iter()
        .filter_map(|tag| {
            Some((
                tag.key()?.to_string(),
                tag.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_id_loses_prefix() {
        assert_eq!(zone_id("/hostedzone/Z123ABC"), "Z123ABC");
        assert_eq!(zone_id("Z123ABC"), "Z123ABC");
    }

    #[test]
    fn change_id_loses_prefix() {
        assert_eq!(change_id("/change/C2682N5HXP0BZ4"), "C2682N5HXP0BZ4");
    }

    #[test]
    fn dns_name_is_lowercase_without_dot() {
        assert_eq!(
            dns_name("Agents.DeepSecurity.TrendMicro.com."),
            "agents.deepsecurity.trendmicro.com"
        );
    }

    #[test]
    fn dns_name_decodes_wildcard_escape() {
        assert_eq!(
            dns_name("\\052.deepsecurity.trendmicro.com."),
            "*.deepsecurity.trendmicro.com"
        );
    }

    #[test]
    fn dns_name_keeps_lone_backslash() {
        assert_eq!(dns_name("a\\b.example."), "a\\b.example");
        assert_eq!(dns_name("a\\09"), "a\\09");
        assert_eq!(dns_name("end\\"), "end\\");
    }

    #[test]
    fn dns_name_decodes_other_escapes() {
        assert_eq!(dns_name("a\\100b.example."), "a@b.example");
    }
}
