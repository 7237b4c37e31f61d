// SPDX-License-Identifier: Apache-2.0
// The full-screen terminal of `pyflame top`, drawn with ncurses: the only
// file that knows curses. It draws lines it is given and hands back keys;
// what they mean is top's.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace pyflame::core {

class TopScreen {
 public:
  // nullptr when the terminal cannot be driven (an unknown TERM): top then
  // prints plain text instead.
  static std::unique_ptr<TopScreen> open();
  ~TopScreen();
  TopScreen(const TopScreen&) = delete;
  TopScreen& operator=(const TopScreen&) = delete;

  // A key if one is waiting (KeyNone if not); never blocks.
  int poll_key();
  // Waits up to `milliseconds` for a key (KeyNone if none came).
  int wait_key(int milliseconds);

  // Replaces the screen: `header` lines in bold at the top, `body` below,
  // `footer` (one line) in reverse video at the bottom; lines are cut to
  // the width, the body to the height left.
  void draw(const std::vector<std::string>& header, const std::vector<std::string>& body,
            const std::string& footer);
  size_t width() const;
  size_t height() const;

  static constexpr int KeyNone = -1;
  static const int KeyResize;
  static const int KeyBackspace;

 private:
  TopScreen() = default;
  struct Terminal;
  std::unique_ptr<Terminal> terminal_;
};

}  // namespace pyflame::core
