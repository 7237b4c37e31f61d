// SPDX-License-Identifier: Apache-2.0
// Minimal JSON output: enough for our writers, with strict string escaping.
#pragma once

#include <string>
#include <string_view>

namespace pyflame::core {

// Appends `s` as a JSON string literal. Invalid UTF-8 (possible in a 2.7
// byte-string file name) becomes U+FFFD rather than a broken document.
void append_json_string(std::string& out, std::string_view s);

}  // namespace pyflame::core
