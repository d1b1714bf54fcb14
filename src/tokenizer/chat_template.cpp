// Chat template detection and rendering (see chat_template.h). Detection markers follow the
// substrings llama.cpp's llama-chat.cpp uses to tell families apart; the rendering of each family
// follows the family's canonical Jinja template (quoted in the comments), not llama.cpp's
// approximations, so that the prompt matches what transformers' apply_chat_template produces.
#include "tokenizer/chat_template.h"

#include <array>
#include <ctime>

#include "core/error.h"

namespace slm {
namespace {

struct FamilyName {
  ChatFamily family;
  std::string_view name;
};

constexpr std::array<FamilyName, 16> kFamilyNames = {{
    {ChatFamily::ChatML, "chatml"},
    {ChatFamily::Phi4, "phi4"},
    {ChatFamily::Llama2, "llama2"},
    {ChatFamily::MistralV1, "mistral-v1"},
    {ChatFamily::MistralV3, "mistral-v3"},
    {ChatFamily::MistralV3Tekken, "mistral-v3-tekken"},
    {ChatFamily::MistralV7, "mistral-v7"},
    {ChatFamily::MistralV7Tekken, "mistral-v7-tekken"},
    {ChatFamily::Llama3, "llama3"},
    {ChatFamily::Llama31, "llama3.1"},
    {ChatFamily::Phi3, "phi3"},
    {ChatFamily::Gemma, "gemma"},
    {ChatFamily::Gemma3, "gemma3"},
    {ChatFamily::DeepSeekR1, "deepseek-r1"},
    {ChatFamily::DeepSeekV3, "deepseek3"},
    {ChatFamily::CommandR, "command-r"},
}};

bool contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

// Python's str.strip() / Jinja's |trim on ASCII whitespace (the Unicode spaces Python also strips
// are not handled).
std::string trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(kSpace);
  return std::string(s.substr(b, e - b + 1));
}

std::string family_label(ChatFamily f) { return "chat template '" + std::string(chat_family_name(f)) + "'"; }

// ChatML templates that insert a system turn when the conversation has none spell it as one string
// literal, "<|im_start|>system\n<text><|im_end|>", where \n is an escape or a real newline. A
// literal whose text contains a quote or a brace is an expression (system content from messages),
// not a default.
std::string find_default_system(std::string_view t) {
  constexpr std::string_view kOpen = "<|im_start|>system";
  constexpr std::string_view kClose = "<|im_end|>";
  for (size_t pos = t.find(kOpen); pos != std::string_view::npos; pos = t.find(kOpen, pos + 1)) {
    size_t p = pos + kOpen.size();
    if (t.substr(p, 2) == "\\n") {
      p += 2;
    } else if (p < t.size() && t[p] == '\n') {
      p += 1;
    } else {
      continue;
    }
    const size_t end = t.find(kClose, p);
    if (end == std::string_view::npos) continue;
    const std::string_view body = t.substr(p, end - p);
    if (body.empty() || body.find_first_of("'\"{}") != std::string_view::npos) continue;
    std::string out;  // undo the Jinja string escapes the body may use
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] == '\\' && i + 1 < body.size()) {
        const char c = body[++i];
        out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
      } else {
        out += body[i];
      }
    }
    return out;
  }
  return {};
}

// "%d %b %Y" of the local date, as transformers' strftime_now renders it for Llama 3.2.
std::string today_string() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%d %b %Y", &tm);
  return buf;
}

void check_roles(ChatFamily f, const std::vector<ChatMessage>& messages) {
  if (messages.empty()) throw Error(family_label(f) + ": no messages to render");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r == "system" || r == "user" || r == "assistant") continue;
    if (r == "tool" || r == "ipython" || r == "function") {
      throw Error(family_label(f) + ": message " + std::to_string(i) + " has role '" + r +
                  "': tool messages are not supported");
    }
    throw Error(family_label(f) + ": message " + std::to_string(i) + " has role '" + r +
                "', expected 'system', 'user' or 'assistant'");
  }
}

// Families whose template takes an optional leading system message off the list and then raises
// unless the rest goes user, assistant, user, ... (Llama 2, Mistral v1/v3, Gemma, Command-R).
// Returns the index of the first non-system message.
size_t check_alternation(ChatFamily f, const std::vector<ChatMessage>& messages,
                         bool system_allowed) {
  size_t first = 0;
  if (messages[0].role == "system") {
    if (!system_allowed) {
      // Gemma 1/2: {{ raise_exception('System role not supported') }}
      throw Error(family_label(f) +
                  ": the model's template rejects system messages ('System role not supported')");
    }
    first = 1;
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const bool want_user = (i - first) % 2 == 0;
    const std::string& r = messages[i].role;
    if (r != (want_user ? "user" : "assistant")) {
      throw Error(family_label(f) + ": message " + std::to_string(i) + " has role '" + r +
                  "' but the template requires " +
                  (first ? "after the optional first system message, " : "") +
                  "roles alternating user/assistant/user/... (expected '" +
                  (want_user ? "user" : "assistant") + "')");
    }
  }
  return first;
}

// ChatML, as in Qwen 2.5 (without tools):
//   {%- if messages[0]['role'] == 'system' %}'<|im_start|>system\n' + content + '<|im_end|>\n'
//   {%- else %}'<|im_start|>system\nYou are Qwen, ...<|im_end|>\n'
//   then every other message '<|im_start|>' + role + '\n' + content + '<|im_end|>\n'
//   and '<|im_start|>assistant\n' for the generation prompt. Content is not trimmed.
std::string render_chatml(const ChatTemplate& t, const std::vector<ChatMessage>& m, bool gen) {
  std::string out;
  if (!t.default_system.empty() && m[0].role != "system") {
    out += "<|im_start|>system\n" + t.default_system + "<|im_end|>\n";
  }
  for (const auto& msg : m) out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

// Phi-4: '<|im_start|>' + role + '<|im_sep|>' + content + '<|im_end|>', prompt
// '<|im_start|>assistant<|im_sep|>'; no newlines between turns.
std::string render_phi4(const std::vector<ChatMessage>& m, bool gen) {
  std::string out;
  for (const auto& msg : m) out += "<|im_start|>" + msg.role + "<|im_sep|>" + msg.content + "<|im_end|>";
  if (gen) out += "<|im_start|>assistant<|im_sep|>";
  return out;
}

// Llama 2 chat (meta-llama/Llama-2-*-chat-hf): the system message becomes
// '<<SYS>>\n' + system + '\n<</SYS>>\n\n' in front of the first user content; then
// user: bos_token + '[INST] ' + content.strip() + ' [/INST]'
// assistant: ' ' + content.strip() + ' ' + eos_token. No generation prompt.
std::string render_llama2(const std::vector<ChatMessage>& m, std::string_view bos,
                          std::string_view eos) {
  const size_t first = check_alternation(ChatFamily::Llama2, m, true);
  std::string out;
  for (size_t i = first; i < m.size(); ++i) {
    std::string content = m[i].content;
    if (i == first && first == 1) content = "<<SYS>>\n" + m[0].content + "\n<</SYS>>\n\n" + content;
    if (m[i].role == "user") {
      out += std::string(bos) + "[INST] " + trim(content) + " [/INST]";
    } else {
      out += " " + trim(content) + " " + std::string(eos);
    }
  }
  return out;
}

// Mistral v1 / v3 / v3-tekken (mistral-common; Nemo's template is the v3-tekken one):
//   bos_token, then user '[INST]' + content + '[/INST]' and assistant content + eos_token, with
//   v1: ' [INST] ' + content + ' [/INST]', assistant ' ' + content; system on the FIRST user turn
//   v3: '[INST] ' + content + '[/INST]', assistant ' ' + content|trim; system on the LAST turn
//   v3-tekken (Nemo): '[INST]' + content + '[/INST]', assistant content; system on the last turn
// The system text goes in as system + '\n\n' + content. "Last turn" is Nemo's
// `loop.last and system_message is defined`: when the conversation ends with an assistant
// message, the system text is not rendered at all.
std::string render_mistral_inst(ChatFamily f, const std::vector<ChatMessage>& m,
                                std::string_view bos, std::string_view eos) {
  const size_t first = check_alternation(f, m, true);
  const bool has_system = first == 1;
  std::string out(bos);
  for (size_t i = first; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "user") {
      const bool put_system = has_system && (f == ChatFamily::MistralV1 ? i == first : i + 1 == m.size());
      const std::string content = put_system ? m[0].content + "\n\n" + msg.content : msg.content;
      switch (f) {
        case ChatFamily::MistralV1: out += " [INST] " + content + " [/INST]"; break;
        case ChatFamily::MistralV3: out += "[INST] " + content + "[/INST]"; break;
        default: out += "[INST]" + content + "[/INST]"; break;
      }
    } else {
      switch (f) {
        case ChatFamily::MistralV1: out += " " + msg.content; break;
        case ChatFamily::MistralV3: out += " " + trim(msg.content); break;
        default: out += msg.content; break;
      }
      out += eos;
    }
  }
  return out;
}

// Mistral v7 (Large 2411) and v7-tekken (Small 3): system turns are kept in place,
// bos_token + '[SYSTEM_PROMPT] ' + sys + '[/SYSTEM_PROMPT]' + '[INST] ' + user + '[/INST]' +
// ' ' + assistant + eos_token (tekken: no spaces after the markers).
std::string render_mistral_v7(ChatFamily f, const std::vector<ChatMessage>& m,
                              std::string_view bos, std::string_view eos) {
  const std::string sp = f == ChatFamily::MistralV7 ? " " : "";
  std::string out(bos);
  for (const auto& msg : m) {
    if (msg.role == "system") {
      out += "[SYSTEM_PROMPT]" + sp + msg.content + "[/SYSTEM_PROMPT]";
    } else if (msg.role == "user") {
      out += "[INST]" + sp + msg.content + "[/INST]";
    } else {
      out += sp + msg.content + std::string(eos);
    }
  }
  return out;
}

std::string llama3_turn(std::string_view role, std::string_view content) {
  return "<|start_header_id|>" + std::string(role) + "<|end_header_id|>\n\n" + std::string(content) +
         "<|eot_id|>";
}

// Llama 3.0: every message '<|start_header_id|>' + role + '<|end_header_id|>\n\n' +
// content|trim + '<|eot_id|>', bos_token in front of the first; prompt
// '<|start_header_id|>assistant<|end_header_id|>\n\n'.
// Llama 3.1/3.2/3.3 always open with a system turn:
//   'Cutting Knowledge Date: December 2023\nToday Date: ' + date + '\n\n' + system|trim
// taking the first message's text when it is a system message; the rest as in 3.0.
std::string render_llama3(const ChatTemplate& t, const std::vector<ChatMessage>& m, bool gen,
                          std::string_view bos) {
  std::string out(bos);
  size_t first = 0;
  if (t.family == ChatFamily::Llama31) {
    std::string system;
    if (m[0].role == "system") {
      system = trim(m[0].content);
      first = 1;
    }
    out += llama3_turn("system", "Cutting Knowledge Date: December 2023\nToday Date: " +
                                     t.date_string + "\n\n" + system);
  }
  for (size_t i = first; i < m.size(); ++i) out += llama3_turn(m[i].role, trim(m[i].content));
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Phi-3.5: '<|system|>\n' + content + '<|end|>\n' (only when the system text is non-empty),
// '<|user|>\n' ..., '<|assistant|>\n' ...; then '<|assistant|>\n' if add_generation_prompt,
// else eos_token.
std::string render_phi3(const std::vector<ChatMessage>& m, bool gen, std::string_view eos) {
  std::string out;
  for (const auto& msg : m) {
    if (msg.role == "system" && msg.content.empty()) continue;
    out += "<|" + msg.role + "|>\n" + msg.content + "<|end|>\n";
  }
  out += gen ? std::string("<|assistant|>\n") : std::string(eos);
  return out;
}

// Gemma 2: bos_token; raises on a system message and on roles that do not alternate; each turn
// '<start_of_turn>' + (assistant -> 'model') + '\n' + content|trim + '<end_of_turn>\n';
// prompt '<start_of_turn>model\n'. Gemma 3 takes a leading system message as
// first_user_prefix = system + '\n\n', written untrimmed after the first turn's header.
std::string render_gemma(ChatFamily f, const std::vector<ChatMessage>& m, bool gen,
                         std::string_view bos) {
  const size_t first = check_alternation(f, m, f == ChatFamily::Gemma3);
  std::string out(bos);
  for (size_t i = first; i < m.size(); ++i) {
    const std::string role = m[i].role == "assistant" ? "model" : m[i].role;
    out += "<start_of_turn>" + role + "\n";
    if (i == first && first == 1) out += m[0].content + "\n\n";
    out += trim(m[i].content) + "<end_of_turn>\n";
  }
  if (gen) out += "<start_of_turn>model\n";
  return out;
}

// DeepSeek R1 (distills) and V3: bos_token + the text of the last system message, then
// user '<｜User｜>' + content, assistant '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'.
// R1 keeps only what follows the last '</think>' of an assistant message and opens the
// generation with '<｜Assistant｜><think>\n'; V3 with '<｜Assistant｜>'.
std::string render_deepseek(ChatFamily f, const std::vector<ChatMessage>& m, bool gen,
                            std::string_view bos) {
  std::string system;
  for (const auto& msg : m) {
    if (msg.role == "system") system = msg.content;
  }
  std::string out = std::string(bos) + system;
  for (const auto& msg : m) {
    if (msg.role == "user") {
      out += "<｜User｜>" + msg.content;
    } else if (msg.role == "assistant") {
      std::string content = msg.content;
      const size_t think = content.rfind("</think>");
      if (f == ChatFamily::DeepSeekR1 && think != std::string::npos) {
        content = content.substr(think + std::string_view("</think>").size());
      }
      out += "<｜Assistant｜>" + content + "<｜end▁of▁sentence｜>";
    }
  }
  if (gen) out += f == ChatFamily::DeepSeekR1 ? "<｜Assistant｜><think>\n" : "<｜Assistant｜>";
  return out;
}

// Command-R: bos_token; a leading system message as
// '<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>' + system + '<|END_OF_TURN_TOKEN|>' (not stripped);
// alternating user/assistant turns with content.strip() between <|USER_TOKEN|> or
// <|CHATBOT_TOKEN|> and <|END_OF_TURN_TOKEN|>; prompt '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>'.
std::string render_command_r(const std::vector<ChatMessage>& m, bool gen, std::string_view bos) {
  const size_t first = check_alternation(ChatFamily::CommandR, m, true);
  std::string out(bos);
  if (first == 1) {
    out += "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>" + m[0].content + "<|END_OF_TURN_TOKEN|>";
  }
  for (size_t i = first; i < m.size(); ++i) {
    out += m[i].role == "user" ? "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>"
                               : "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>";
    out += trim(m[i].content) + "<|END_OF_TURN_TOKEN|>";
  }
  if (gen) out += "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>";
  return out;
}

}  // namespace

ChatFamily detect_chat_family(std::string_view t) {
  if (contains(t, "<|im_start|>")) {
    if (contains(t, "<|im_sep|>")) return ChatFamily::Phi4;
    // SmolVLM uses <|im_start|> as its BOS but is not ChatML.
    if (contains(t, "<end_of_utterance>")) return ChatFamily::Unknown;
    return ChatFamily::ChatML;
  }
  if (contains(t, "[INST]")) {
    if (contains(t, "[SYSTEM_PROMPT]")) return ChatFamily::MistralV7;
    // The official Mistral v1 template writes ' [INST] ' + system_message; v3 and v3-tekken carry
    // [AVAILABLE_TOOLS]. Tekken's markers have no space: "[INST]" as a whole string literal.
    if (contains(t, "' [INST] ' + system_message") || contains(t, "[AVAILABLE_TOOLS]")) {
      if (contains(t, " [INST]")) return ChatFamily::MistralV1;
      if (contains(t, "\"[INST]\"")) return ChatFamily::MistralV3Tekken;
      return ChatFamily::MistralV3;
    }
    if (contains(t, "<<SYS>>")) return ChatFamily::Llama2;
    return ChatFamily::MistralV1;  // early [INST] templates without a system block
  }
  if (contains(t, "<|assistant|>") && contains(t, "<|end|>")) return ChatFamily::Phi3;
  if (contains(t, "<start_of_turn>")) {
    return contains(t, "first_user_prefix") ? ChatFamily::Gemma3 : ChatFamily::Gemma;
  }
  if (contains(t, "<|START_OF_TURN_TOKEN|>") && contains(t, "<|USER_TOKEN|>")) {
    return ChatFamily::CommandR;
  }
  if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>")) {
    return contains(t, "Cutting Knowledge Date") ? ChatFamily::Llama31 : ChatFamily::Llama3;
  }
  if (contains(t, "<｜Assistant｜>") && contains(t, "<｜User｜>")) {
    return contains(t, "<think>") ? ChatFamily::DeepSeekR1 : ChatFamily::DeepSeekV3;
  }
  return ChatFamily::Unknown;
}

ChatTemplate parse_chat_template(std::string_view template_text) {
  ChatTemplate t;
  t.family = detect_chat_family(template_text);
  if (t.family == ChatFamily::ChatML) t.default_system = find_default_system(template_text);
  if (t.family == ChatFamily::Llama31 && contains(template_text, "strftime_now")) {
    t.date_string = today_string();
  }
  return t;
}

std::optional<ChatFamily> chat_family_from_name(std::string_view name) {
  for (const auto& fn : kFamilyNames) {
    if (fn.name == name) return fn.family;
  }
  return std::nullopt;
}

std::string_view chat_family_name(ChatFamily family) {
  for (const auto& fn : kFamilyNames) {
    if (fn.family == family) return fn.name;
  }
  return "unknown";
}

std::string chat_family_names() {
  std::string out;
  for (const auto& fn : kFamilyNames) {
    if (!out.empty()) out += ", ";
    out += fn.name;
  }
  return out;
}

bool chat_renders_bos(ChatFamily family) {
  switch (family) {
    case ChatFamily::Unknown:
    case ChatFamily::ChatML:
    case ChatFamily::Phi4:
    case ChatFamily::Phi3:
      return false;
    default:
      return true;
  }
}

ChatTemplate resolve_chat_template(std::string_view gguf_template, std::string_view choice) {
  if (!choice.empty()) {
    const auto family = chat_family_from_name(choice);
    if (!family) {
      throw Error("--chat-template: unknown chat template '" + std::string(choice) +
                  "', expected one of: " + chat_family_names());
    }
    ChatTemplate t;
    t.family = *family;
    return t;
  }
  if (gguf_template.empty()) {
    throw Error("the model has no tokenizer.chat_template; pass --chat-template NAME (one of: " +
                chat_family_names() + ")");
  }
  ChatTemplate t = parse_chat_template(gguf_template);
  if (t.family == ChatFamily::Unknown) {
    std::string head(gguf_template.substr(0, 80));
    for (char& c : head) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    throw Error("tokenizer.chat_template: the model's chat template (starting \"" + head +
                "\") is not one of the known families; pass --chat-template NAME (one of: " +
                chat_family_names() + ") to choose one");
  }
  return t;
}

std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, std::string_view bos, std::string_view eos) {
  check_roles(t.family, messages);
  const bool gen = add_generation_prompt;
  switch (t.family) {
    case ChatFamily::ChatML: return render_chatml(t, messages, gen);
    case ChatFamily::Phi4: return render_phi4(messages, gen);
    case ChatFamily::Llama2: return render_llama2(messages, bos, eos);
    case ChatFamily::MistralV1:
    case ChatFamily::MistralV3:
    case ChatFamily::MistralV3Tekken: return render_mistral_inst(t.family, messages, bos, eos);
    case ChatFamily::MistralV7:
    case ChatFamily::MistralV7Tekken: return render_mistral_v7(t.family, messages, bos, eos);
    case ChatFamily::Llama3:
    case ChatFamily::Llama31: return render_llama3(t, messages, gen, bos);
    case ChatFamily::Phi3: return render_phi3(messages, gen, eos);
    case ChatFamily::Gemma:
    case ChatFamily::Gemma3: return render_gemma(t.family, messages, gen, bos);
    case ChatFamily::DeepSeekR1:
    case ChatFamily::DeepSeekV3: return render_deepseek(t.family, messages, gen, bos);
    case ChatFamily::CommandR: return render_command_r(messages, gen, bos);
    case ChatFamily::Unknown: break;
  }
  throw Error("chat template: cannot render with an unknown template family; pass "
              "--chat-template NAME (one of: " + chat_family_names() + ")");
}

std::string render_chat(ChatFamily family, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, std::string_view bos, std::string_view eos) {
  ChatTemplate t;
  t.family = family;
  return render_chat(t, messages, add_generation_prompt, bos, eos);
}

}  // namespace slm
