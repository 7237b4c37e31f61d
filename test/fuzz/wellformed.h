// SPDX-License-Identifier: Apache-2.0
// Small well-formedness checkers for the writers' output formats: enough to
// tell a whole document from a torn or mis-escaped one, not full parsers.
#pragma once

#include <string>
#include <string_view>

namespace pyflame::fuzz {

// Each returns "" when the document is well-formed, else what is wrong.
std::string check_utf8(std::string_view s);
std::string check_json(std::string_view s);
// XML 1.0 as our SVG writer emits it: a declaration, elements, attributes
// in quotes, entity references, comments and CDATA sections.
std::string check_xml(std::string_view s);
// A gzip stream holding one protobuf message (wire format only).
std::string check_gzip_protobuf(std::string_view s);

}  // namespace pyflame::fuzz
