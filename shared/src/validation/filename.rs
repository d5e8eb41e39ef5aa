//! Turns a client-supplied filename into a safe display name: no directories, no control
//! characters, no leading dots, bounded length, extension kept; and checks a result filename a
//! client names in a download path by the old API's rules.

const MAX_LEN: usize = 128;

pub fn sanitize_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut cleaned = String::with_capacity(base.len());
    for c in base.chars() {
        let keep = c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '(' | ')');
        let c = if keep { c } else { '_' };
        // Runs of `_` or `.` collapse to one: no name holds `..`.
        if !((c == '_' || c == '.') && cleaned.ends_with(c)) {
            cleaned.push(c);
        }
    }
    let trimmed = cleaned.trim().trim_start_matches(['.', ' ']);
    let mut name: String = trimmed.to_owned();
    if name.chars().count() > MAX_LEN {
        let ext: String = match name.rsplit_once('.') {
            Some((_, ext)) if ext.chars().count() <= 10 => format!(".{ext}"),
            _ => String::new(),
        };
        let stem: String = name.chars().take(MAX_LEN - ext.chars().count()).collect();
        name = format!("{stem}{ext}");
    }
    if name.is_empty() || name.chars().all(|c| c == '_' || c == '.') {
        "upload".to_owned()
    } else {
        name
    }
}

/// A `Content-Disposition` value that downloads as `name`, with only characters that are safe
/// inside the quoted filename (non-ASCII, quotes and backslashes are dropped).
pub fn attachment_disposition(name: &str) -> String {
    let safe: String = name
        .chars()
        .filter(|c| (c.is_ascii_graphic() || *c == ' ') && *c != '"' && *c != '\\')
        .collect();
    format!("attachment; filename=\"{safe}\"")
}

/// Why a result filename named in a path is refused, by the old API's rules: at most 255
/// characters, none of `..`, `/`, `\`, NUL, CR, LF, and the extension of a model format (`.glb`,
/// `.usdz`, `.stl`, `.zip` for the OBJ package, and the old API's `.obj`).
pub fn check_result_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err("the filename must have 1 to 255 characters");
    }
    if name.contains("..") || name.contains(['/', '\\', '\0', '\r', '\n']) {
        return Err("the filename may not contain '..', '/', '\\', NUL, CR or LF");
    }
    match extension(name).as_deref() {
        Some("glb" | "obj" | "usdz" | "stl" | "zip") => Ok(()),
        _ => Err("only .glb, .usdz, .obj.zip, .stl and .obj files can be downloaded"),
    }
}

/// The lower-cased extension of a filename, if any.
pub fn extension(name: &str) -> Option<String> {
    name.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn result_names_follow_the_old_rules() {
        for good in [
            "a.glb",
            "chair model.GLB",
            "x.obj",
            "x.usdz",
            "x.STL",
            "x.obj.zip",
            &format!("{}.glb", "a".repeat(251)),
        ] {
            assert_eq!(check_result_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "../a.glb",
            "a..glb",
            "a/b.glb",
            "a\\b.glb",
            "a\0.glb",
            "a\r.glb",
            "a\n.glb",
            "a.png",
            "glb",
            &format!("{}.glb", "a".repeat(252)),
        ] {
            assert!(check_result_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn strips_paths_controls_and_hidden_prefixes() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\Users\\x\\photo.JPG"), "photo.JPG");
        assert_eq!(sanitize_filename(".htaccess"), "htaccess");
        assert_eq!(sanitize_filename("a\0b\r\n<script>.png"), "a_b_script_.png");
        assert_eq!(sanitize_filename(""), "upload");
        assert_eq!(sanitize_filename("a..b...png"), "a.b.png");
        assert_eq!(sanitize_filename("..."), "upload");
        assert_eq!(
            sanitize_filename("???"),
            "upload",
            "nothing but placeholders"
        );
        assert_eq!(sanitize_filename("_._"), "upload");
        assert_eq!(
            sanitize_filename("café photo (1).webp"),
            "café photo (1).webp"
        );
    }

    #[test]
    fn dispositions_cannot_break_out_of_the_quotes() {
        assert_eq!(
            attachment_disposition("a \"b\"\\c\r\n.glb"),
            "attachment; filename=\"a bc.glb\""
        );
        assert_eq!(
            attachment_disposition("café.glb"),
            "attachment; filename=\"caf.glb\""
        );
    }

    #[test]
    fn long_names_keep_their_extension() {
        let name = sanitize_filename(&format!("{}.png", "x".repeat(500)));
        assert_eq!(name.chars().count(), MAX_LEN);
        assert!(name.ends_with(".png"));
        // An "extension" longer than ten characters is part of the name, cut like the rest.
        let long_tail = format!("{}.{}", "x".repeat(200), "y".repeat(50));
        assert_eq!(sanitize_filename(&long_tail), "x".repeat(MAX_LEN));
    }

    proptest! {
        #[test]
        fn output_is_always_safe(raw in any::<String>()) {
            let name = sanitize_filename(&raw);
            prop_assert!(!name.is_empty() && name.chars().count() <= MAX_LEN);
            prop_assert!(!name.contains(['/', '\\', '\0']) && !name.starts_with('.'));
            prop_assert!(!name.chars().any(char::is_control));
        }
    }
}
