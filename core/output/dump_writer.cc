// SPDX-License-Identifier: Apache-2.0
#include "core/output/dump_writer.h"

#include <fmt/format.h>

#include "core/output/json.h"

namespace pyflame::core {
namespace {

// JSON values: strings escaped, std::nullopt as null.
void append_value(std::string& out, std::string_view value) { append_json_string(out, value); }
void append_value(std::string& out, const std::string& value) { append_json_string(out, value); }
void append_value(std::string& out, bool value) { out += value ? "true" : "false"; }
template <typename Number>
void append_value(std::string& out, Number value) {
  out += fmt::format("{}", value);
}
template <typename T>
void append_value(std::string& out, const std::optional<T>& value) {
  if (value) {
    append_value(out, *value);
  } else {
    out += "null";
  }
}

// Appends `"key": value`, preceded by a comma unless it opens an object.
template <typename T>
void append_field(std::string& out, std::string_view key, const T& value) {
  if (out.back() != '{') out += ", ";
  append_json_string(out, key);
  out += ": ";
  append_value(out, value);
}

// A frame's variables, one a line under it: "        arg   x = 1".
void append_locals_text(std::string& out, const FrameLocals* locals) {
  if (locals == nullptr || locals->unreadable) {
    out += "        (variables unreadable)\n";
    return;
  }
  for (const Local& v : locals->values)
    out += fmt::format("        {:<5} {} = {}\n", local_kind_name(v.kind), v.name, v.repr);
  if (locals->truncated) out += "        ... (more variables not read)\n";
}

void append_locals_json(std::string& out, const FrameLocals* locals) {
  out += ", \"locals\": ";
  if (locals == nullptr || locals->unreadable) {
    out += "null";
    return;
  }
  out += "[";
  for (const Local& v : locals->values) {
    out += out.back() == '[' ? "{" : ", {";
    append_field(out, "name", v.name);
    append_field(out, "kind", local_kind_name(v.kind));
    append_field(out, "type", v.type);
    append_field(out, "repr", v.repr);
    out += "}";
  }
  out += "]";
  if (locals->truncated) append_field(out, "locals_truncated", true);
}

}  // namespace

std::string snapshot_to_text(const Snapshot& snapshot, bool locals) {
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
      if (f.kind == FrameKind::kNative) {
        // "function [libfoo.so] (file.c:12)" (DWARF's file and line when known)
        out += fmt::format("    {} [{}]", f.function, library_file_name(f.library));
        if (!f.filename.empty() && f.line) out += fmt::format(" ({}:{})", f.filename, *f.line);
        if (f.inlined) out += " [inlined]";
        out += "\n";
        continue;
      }
      out += fmt::format("    {} ({}:{})\n", f.qualname.value_or(f.function), f.filename,
                         f.line ? std::to_string(*f.line) : "?");
      if (locals) append_locals_text(out, f.locals);
    }
    if (t.truncated) out += "    ... (stack truncated: a frame could not be read)\n";
  }
  return out;
}

std::string snapshot_to_json(const Snapshot& snapshot, bool locals) {
  std::string out = "{";
  append_field(out, "pid", snapshot.pid);
  append_field(out, "python_version", snapshot.python_version);
  out += ", \"threads\": [";
  for (const ThreadSample& t : snapshot.threads) {
    out += out.back() == '[' ? "{" : ", {";
    append_field(out, "thread_id", t.thread_id);
    append_field(out, "native_id", t.native_id);
    append_field(out, "name", t.name);
    append_field(out, "holds_gil", t.holds_gil);
    append_field(out, "idle", t.idle);
    out += ", \"frames\": [";
    for (const Frame& f : t.frames) {
      out += out.back() == '[' ? "{" : ", {";
      if (f.kind == FrameKind::kNative) {
        append_field(out, "kind", std::string_view("native"));
        append_field(out, "function", f.function);
        append_field(out, "library", f.library);
        append_field(out, "address", f.address);
        if (!f.filename.empty()) append_field(out, "filename", f.filename);
        if (f.line) append_field(out, "line", f.line);
        if (f.inlined) append_field(out, "inlined", true);
        out += "}";
        continue;
      }
      append_field(out, "kind", std::string_view("python"));
      append_field(out, "function", f.function);
      append_field(out, "qualname", f.qualname);
      append_field(out, "filename", f.filename);
      append_field(out, "line", f.line);
      if (locals) append_locals_json(out, f.locals);
      out += "}";
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

}  // namespace pyflame::core
