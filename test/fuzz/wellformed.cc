// SPDX-License-Identifier: Apache-2.0
#include "test/fuzz/wellformed.h"

#include <zlib.h>

#include <cstdint>
#include <vector>

namespace pyflame::fuzz {
namespace {

size_t utf8_length(std::string_view s, size_t i) {
  auto b = static_cast<uint8_t>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  uint32_t cp = n == 1 ? b : n == 2 ? (b & 0x1f) : n == 3 ? (b & 0x0f) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) {
    auto c = static_cast<uint8_t>(s[i + k]);
    if ((c & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

// Recursive descent with a depth bound; positions are byte offsets.
class Json {
 public:
  explicit Json(std::string_view s) : s_(s) {}
  std::string run() {
    value(0);
    ws();
    if (error_.empty() && i_ != s_.size()) error_ = "trailing bytes";
    return error_.empty() ? "" : error_ + " at byte " + std::to_string(i_);
  }

 private:
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) { ++i_; return true; }
    return false;
  }
  void value(int depth) {
    if (!error_.empty()) return;
    if (depth > 200) { error_ = "nested too deep"; return; }
    ws();
    if (i_ >= s_.size()) { error_ = "unexpected end"; return; }
    char c = s_[i_];
    if (c == '{') {
      ++i_;
      if (eat('}')) return;
      do {
        ws();
        string();
        if (!eat(':')) { if (error_.empty()) error_ = "expected ':'"; return; }
        value(depth + 1);
        if (!error_.empty()) return;
      } while (eat(','));
      if (!eat('}')) error_ = "expected '}'";
    } else if (c == '[') {
      ++i_;
      if (eat(']')) return;
      do {
        value(depth + 1);
        if (!error_.empty()) return;
      } while (eat(','));
      if (!eat(']')) error_ = "expected ']'";
    } else if (c == '"') {
      string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      number();
    } else {
      for (std::string_view word : {"true", "false", "null"})
        if (s_.substr(i_, word.size()) == word) { i_ += word.size(); return; }
      error_ = "unexpected character";
    }
  }
  void string() {
    if (i_ >= s_.size() || s_[i_] != '"') { error_ = "expected a string"; return; }
    ++i_;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '"') { ++i_; return; }
      if (static_cast<uint8_t>(c) < 0x20) { error_ = "control character in a string"; return; }
      if (c == '\\') {
        if (++i_ >= s_.size()) break;
        char e = s_[i_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k)
            if (i_ + k >= s_.size() || !isxdigit(static_cast<unsigned char>(s_[i_ + k]))) {
              error_ = "bad \\u escape";
              return;
            }
          i_ += 5;
          continue;
        }
        if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          error_ = "bad escape";
          return;
        }
        ++i_;
        continue;
      }
      size_t n = utf8_length(s_, i_);
      if (n == 0) { error_ = "invalid UTF-8 in a string"; return; }
      i_ += n;
    }
    error_ = "unterminated string";
  }
  void number() {
    size_t start = i_;
    if (s_[i_] == '-') ++i_;
    auto digits = [&] {
      size_t from = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      return i_ > from;
    };
    if (!digits()) { error_ = "bad number"; return; }
    if (i_ < s_.size() && s_[i_] == '.' && (++i_, !digits())) { error_ = "bad fraction"; return; }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!digits()) { error_ = "bad exponent"; return; }
    }
    (void)start;
  }

  std::string_view s_;
  size_t i_ = 0;
  std::string error_;
};

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == ':' || c == '.';
}

// An entity reference at s[i] == '&': its length, or 0.
size_t entity_length(std::string_view s, size_t i) {
  size_t end = s.find(';', i);
  if (end == std::string_view::npos || end == i + 1 || end - i > 12) return 0;
  std::string_view body = s.substr(i + 1, end - i - 1);
  if (body[0] == '#') {
    bool hex = body.size() > 1 && body[1] == 'x';
    std::string_view digits = body.substr(hex ? 2 : 1);
    if (digits.empty()) return 0;
    for (char c : digits)
      if (!(hex ? isxdigit(static_cast<unsigned char>(c)) : isdigit(static_cast<unsigned char>(c)))) return 0;
    return end - i + 1;
  }
  for (std::string_view known : {"lt", "gt", "amp", "quot", "apos"})
    if (body == known) return end - i + 1;
  return 0;
}

}  // namespace

std::string check_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_length(s, i);
    if (n == 0) return "invalid UTF-8 at byte " + std::to_string(i);
    i += n;
  }
  return "";
}

std::string check_json(std::string_view s) { return Json(s).run(); }

std::string check_xml(std::string_view s) {
  if (auto bad = check_utf8(s); !bad.empty()) return bad;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
      return "control character " + std::to_string(c) + " at byte " + std::to_string(i);
  }
  std::vector<std::string_view> open;
  bool seen_root = false;
  size_t i = 0;
  auto at = [&](std::string_view what) { return " at byte " + std::to_string(i) + ": " + std::string(what); };
  while (i < s.size()) {
    if (s[i] == '&') {
      size_t n = entity_length(s, i);
      if (n == 0) return at("bare '&'");
      i += n;
      continue;
    }
    if (s[i] == '>' && open.empty() && seen_root) return at("stray '>'");
    if (s[i] != '<') {
      if (open.empty() && s[i] != ' ' && s[i] != '\n' && s[i] != '\t' && s[i] != '\r')
        return at("text outside the root element");
      ++i;
      continue;
    }
    std::string_view rest = s.substr(i);
    if (rest.starts_with("<?")) {
      size_t end = s.find("?>", i);
      if (end == std::string_view::npos) return at("unterminated <?");
      i = end + 2;
    } else if (rest.starts_with("<!--")) {
      size_t end = s.find("-->", i + 4);
      if (end == std::string_view::npos) return at("unterminated comment");
      i = end + 3;
    } else if (rest.starts_with("<![CDATA[")) {
      if (open.empty()) return at("CDATA outside the root");
      size_t end = s.find("]]>", i + 9);
      if (end == std::string_view::npos) return at("unterminated CDATA");
      i = end + 3;
    } else if (rest.starts_with("<!")) {
      size_t end = s.find('>', i);
      if (end == std::string_view::npos) return at("unterminated <!");
      i = end + 1;
    } else if (rest.starts_with("</")) {
      size_t j = i + 2;
      while (j < s.size() && name_char(s[j])) ++j;
      std::string_view name = s.substr(i + 2, j - i - 2);
      while (j < s.size() && (s[j] == ' ' || s[j] == '\n')) ++j;
      if (j >= s.size() || s[j] != '>') return at("bad end tag");
      if (open.empty() || open.back() != name) return at("end tag does not match: " + std::string(name));
      open.pop_back();
      i = j + 1;
    } else {
      size_t j = i + 1;
      while (j < s.size() && name_char(s[j])) ++j;
      std::string_view name = s.substr(i + 1, j - i - 1);
      if (name.empty()) return at("'<' that starts no tag");
      if (open.empty() && seen_root) return at("a second root element");
      bool empty_element = false;
      while (true) {
        while (j < s.size() && (s[j] == ' ' || s[j] == '\n' || s[j] == '\t' || s[j] == '\r')) ++j;
        if (j >= s.size()) return at("unterminated tag");
        if (s[j] == '>') { ++j; break; }
        if (s.substr(j, 2) == "/>") { j += 2; empty_element = true; break; }
        size_t k = j;
        while (k < s.size() && name_char(s[k])) ++k;
        if (k == j) return at("bad attribute name in <" + std::string(name) + ">");
        if (k >= s.size() || s[k] != '=') return at("attribute without '='");
        ++k;
        if (k >= s.size() || (s[k] != '"' && s[k] != '\'')) return at("unquoted attribute");
        char quote = s[k];
        size_t v = k + 1;
        while (v < s.size() && s[v] != quote) {
          if (s[v] == '<') return at("'<' in an attribute value");
          if (s[v] == '&') {
            size_t n = entity_length(s, v);
            if (n == 0) return at("bare '&' in an attribute value");
            v += n;
            continue;
          }
          ++v;
        }
        if (v >= s.size()) return at("unterminated attribute value");
        j = v + 1;
      }
      seen_root = true;
      if (!empty_element) open.push_back(name);
      i = j;
    }
  }
  if (!open.empty()) return "unclosed element <" + std::string(open.back()) + ">";
  if (!seen_root) return "no root element";
  return "";
}

std::string check_gzip_protobuf(std::string_view s) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return "inflateInit2 failed";
  std::string raw;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
  z.avail_in = static_cast<uInt>(s.size());
  char buf[1 << 14];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    raw.append(buf, sizeof buf - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
  }
  bool whole = rc == Z_STREAM_END && z.avail_in == 0;
  inflateEnd(&z);
  if (!whole) return "not one whole gzip stream";
  // Top-level fields of the message: tag, then a value of the wire type.
  size_t i = 0;
  auto varint = [&](uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i >= raw.size()) return false;
      auto b = static_cast<uint8_t>(raw[i++]);
      out |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (i < raw.size()) {
    uint64_t tag = 0, value = 0;
    if (!varint(tag) || (tag >> 3) == 0) return "bad field tag at byte " + std::to_string(i);
    switch (tag & 7) {
      case 0: if (!varint(value)) return "bad varint"; break;
      case 1: if (raw.size() - i < 8) return "truncated fixed64"; i += 8; break;
      case 2:
        if (!varint(value) || value > raw.size() - i) return "bad length-delimited field";
        i += value;
        break;
      case 5: if (raw.size() - i < 4) return "truncated fixed32"; i += 4; break;
      default: return "bad wire type";
    }
  }
  return "";
}

}  // namespace pyflame::fuzz
