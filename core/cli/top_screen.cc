// SPDX-License-Identifier: Apache-2.0
#include "core/cli/top_screen.h"

#include <curses.h>
#include <unistd.h>

#include <clocale>
#include <cstdio>

#include "core/output/top_table.h"

namespace pyflame::core {

struct TopScreen::Terminal {
  SCREEN* screen = nullptr;
};

const int TopScreen::KeyResize = KEY_RESIZE;
const int TopScreen::KeyBackspace = KEY_BACKSPACE;

std::unique_ptr<TopScreen> TopScreen::open() {
  std::setlocale(LC_ALL, "");  // names in UTF-8 are drawn as such
  // newterm, not initscr: an unknown terminal is an answer, not an exit.
  SCREEN* screen = newterm(nullptr, stdout, stdin);
  if (screen == nullptr) return nullptr;
  std::unique_ptr<TopScreen> self(new TopScreen());
  self->terminal_ = std::make_unique<Terminal>();
  self->terminal_->screen = screen;
  set_term(screen);
  cbreak();  // keys at once; Ctrl-C still a SIGINT (a stop signal)
  noecho();
  keypad(stdscr, TRUE);
  nodelay(stdscr, TRUE);
  curs_set(0);
  set_escdelay(25);  // Esc clears the filter at once, not after a second
  return self;
}

TopScreen::~TopScreen() {
  if (terminal_ && terminal_->screen) {
    endwin();
    delscreen(terminal_->screen);
  }
}

int TopScreen::poll_key() {
  int key = getch();
  return key == ERR ? KeyNone : key;
}

int TopScreen::wait_key(int milliseconds) {
  timeout(milliseconds);
  int key = getch();
  nodelay(stdscr, TRUE);
  return key == ERR ? KeyNone : key;
}

size_t TopScreen::width() const { return static_cast<size_t>(COLS > 0 ? COLS : 80); }
size_t TopScreen::height() const { return static_cast<size_t>(LINES > 0 ? LINES : 24); }

void TopScreen::draw(const std::vector<std::string>& header, const std::vector<std::string>& body,
                     const std::string& footer) {
  erase();
  const int rows = LINES;
  const size_t columns = width();
  // Cut to the width here too: a line that wraps would push the rest down.
  auto put = [columns](int y, const std::string& line) {
    mvaddstr(y, 0, terminal_text(line, columns).c_str());
  };
  int y = 0;
  attron(A_BOLD);
  for (const std::string& line : header) {
    if (y >= rows - 1) break;
    put(y++, line);
  }
  attroff(A_BOLD);
  for (const std::string& line : body) {
    if (y >= rows - 1) break;
    put(y++, line);
  }
  attron(A_REVERSE);
  put(rows - 1, footer + std::string(columns > footer.size() ? columns - footer.size() - 1 : 0, ' '));
  attroff(A_REVERSE);
  refresh();
}

}  // namespace pyflame::core
