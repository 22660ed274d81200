//! Chat templates, rendered with minijinja the way transformers renders them with Jinja2:
//! `trim_blocks` and `lstrip_blocks` on, loop controls, Python string methods
//! (`.strip()`, `.startswith()`, …), and the globals `raise_exception`, `bos_token`,
//! `eos_token`, `add_generation_prompt`.

use minijinja::{Environment, ErrorKind, Value};

/// A parsed chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos: String,
    eos: String,
}

const NAME: &str = "chat";

impl ChatTemplate {
    /// Parses `source`; `specials` are the `bos_token` and `eos_token` strings.
    pub fn new(source: &str, specials: (String, String)) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<Value, _> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| format!("{e:#}"))?;
        Ok(Self {
            env,
            source: source.to_string(),
            bos: specials.0,
            eos: specials.1,
        })
    }

    /// The template's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The prompt for `messages` (a JSON list of `{role, content, …}`), ending with the
    /// assistant's turn opened when `add_generation_prompt`.
    pub fn render(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        let t = self.env.get_template(NAME).map_err(|e| e.to_string())?;
        t.render(minijinja::context! {
            messages => Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
        })
        .map_err(|e| {
            // the message of raise_exception, or the engine's own with its detail
            match e.kind() {
                ErrorKind::InvalidOperation => e.detail().unwrap_or("").to_string(),
                _ => format!("{e:#}"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_renders_as_transformers() {
        let t = ChatTemplate::new(CHATML, ("<s>".into(), "</s>".into())).unwrap();
        let m = serde_json::json!([{"role": "user", "content": "Hi"}]);
        assert_eq!(
            t.render(&m, true).unwrap(),
            "<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_methods_blocks_and_raise_exception() {
        let src = "{% for m in messages %}\n  {% if m.role == 'bad' %}{{ raise_exception('roles must alternate') }}{% endif %}\n  {{ bos_token }}{{ m.content.strip() }}\n{% endfor %}";
        let t = ChatTemplate::new(src, ("<s>".into(), "</s>".into())).unwrap();
        let ok = serde_json::json!([{"role": "user", "content": "  x "}]);
        // as Jinja2 renders it: lstrip_blocks strips before `{% %}` only
        assert_eq!(t.render(&ok, false).unwrap(), "  <s>x\n");
        let bad = serde_json::json!([{"role": "bad", "content": ""}]);
        assert_eq!(t.render(&bad, false).unwrap_err(), "roles must alternate");
        assert!(ChatTemplate::new("{% for %}", Default::default()).is_err());
    }
}
