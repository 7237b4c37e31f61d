#include "core/dump_writer.h"

#include <fmt/format.h>

#include "core/json.h"

namespace pyflame::core {
namespace {

template <typename T>
void append_optional(std::string& out, const std::optional<T>& value) {
  if (!value) {
    out += "null";
  } else if constexpr (std::is_same_v<T, bool>) {
    out += *value ? "true" : "false";
  } else if constexpr (std::is_same_v<T, std::string>) {
    append_json_string(out, *value);
  } else {
    out += fmt::format("{}", *value);
  }
}

}  // namespace

std::string snapshot_to_text(const Snapshot& snapshot) {
  std::string out = fmt::format("Process {}, Python {}, {} thread{}\n", snapshot.pid,
                                snapshot.python_version, snapshot.threads.size(),
                                snapshot.threads.size() == 1 ? "" : "s");
  for (const ThreadSample& t : snapshot.threads) {
    out += fmt::format("\nThread {:#x}", t.thread_id);
    std::string details;
    if (t.native_id) details += fmt::format("native {}", *t.native_id);
    if (t.name) details += fmt::format("{}\"{}\"", details.empty() ? "" : ", ", *t.name);
    if (t.idle) details += fmt::format("{}{}", details.empty() ? "" : ", ", *t.idle ? "idle" : "active");
    if (t.holds_gil && *t.holds_gil) details += fmt::format("{}holds the GIL", details.empty() ? "" : ", ");
    if (!details.empty()) out += " (" + details + ")";
    out += "\n";
    if (t.frames.empty()) out += "    (no Python frames)\n";
    for (const Frame& f : t.frames) {
      out += fmt::format("    {} ({}:{})\n", f.qualname.value_or(f.function), f.filename,
                         f.line ? std::to_string(*f.line) : "?");
    }
    if (t.truncated) out += "    ... (stack truncated: a frame could not be read)\n";
  }
  return out;
}

std::string snapshot_to_json(const Snapshot& snapshot) {
  std::string out = fmt::format("{{\"pid\": {}, \"python_version\": ", snapshot.pid);
  append_json_string(out, snapshot.python_version);
  out += ", \"threads\": [";
  for (size_t i = 0; i < snapshot.threads.size(); ++i) {
    const ThreadSample& t = snapshot.threads[i];
    out += i ? ", " : "";
    out += fmt::format("{{\"thread_id\": {}, \"native_id\": ", t.thread_id);
    append_optional(out, t.native_id);
    out += ", \"name\": ";
    append_optional(out, t.name);
    out += ", \"holds_gil\": ";
    append_optional(out, t.holds_gil);
    out += ", \"idle\": ";
    append_optional(out, t.idle);
    out += ", \"frames\": [";
    for (size_t j = 0; j < t.frames.size(); ++j) {
      const Frame& f = t.frames[j];
      out += j ? ", " : "";
      out += "{\"function\": ";
      append_json_string(out, f.function);
      out += ", \"qualname\": ";
      append_optional(out, f.qualname);
      out += ", \"filename\": ";
      append_json_string(out, f.filename);
      out += ", \"line\": ";
      append_optional(out, f.line);
      out += "}";
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

}  // namespace pyflame::core
