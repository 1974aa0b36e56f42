// The main job's progress lines (compiler/Progress.h).
#include "compiler/Progress.h"
#include "compiler/Targets.h"

#include <cstring>
#include <sys/ioctl.h>
#include <unistd.h>

namespace pinfer {

namespace {

std::string amount(Progress::Unit unit, uint64_t n) {
  return unit == Progress::Unit::Bytes ? formatBytes(n) : std::to_string(n);
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 10 ? "%.1f s" : "%.0f s", s);
  return buf;
}

} // namespace

Progress::Style Progress::styleFor(bool quiet) {
  if (quiet)
    return Style::Quiet;
  return ::isatty(STDERR_FILENO) ? Style::Bar : Style::Lines;
}

Progress::Progress(Style style, std::FILE *out) : style_(style), out_(out) {}

Progress::~Progress() { end(); }

std::string Progress::barLine(const std::string &what, Unit unit,
                              const char *noun, uint64_t done, uint64_t total,
                              double secs, size_t columns) {
  std::string tail = barTail(unit, noun, done, total, secs);
  std::string head = what;
  // A line wider than the terminal wraps, and "\r" then redraws only its
  // last row: the name gives way, the numbers stay.
  const size_t fixed = std::strlen("pinferc: ") + tail.size();
  if (columns && fixed + head.size() >= columns) {
    size_t keep = columns > fixed + 4 ? columns - fixed - 4 : 0;
    head = head.substr(0, keep) + "...";
  }
  return "pinferc: " + head + tail;
}

std::string Progress::barTail(Unit unit, const char *noun, uint64_t done,
                              uint64_t total, double secs) {
  if (total == 0)
    return "  " + seconds(secs);
  if (done > total)
    done = total;
  std::string s;
  const int width = 24;
  int filled = int(double(width) * double(done) / double(total));
  s += " [" + std::string(size_t(filled), '#') +
       std::string(size_t(width - filled), '.') + "] ";
  char pct[16];
  std::snprintf(pct, sizeof pct, "%3d%% ", int(100.0 * double(done) / total));
  s += pct + amount(unit, done) + "/" + amount(unit, total);
  if (unit == Unit::Items && *noun)
    s += std::string(" ") + noun;
  if (done == total)
    return s + ", " + seconds(secs);
  // The rate so far predicts the rest; nothing is said before there is one.
  if (done > 0 && secs > 0.5)
    s += ", ETA " + seconds(secs * double(total - done) / double(done));
  return s;
}

void Progress::draw(bool final) {
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  std::string line =
      barLine(what_, unit_, noun_, done_, total_, secs, columns_);
  size_t width = line.size();
  if (width < drawnWidth_)
    line.append(drawnWidth_ - width, ' '); // covers a longer earlier line
  drawnWidth_ = width;
  std::fprintf(out_, "\r%s%s", line.c_str(), final ? "\n" : "");
  std::fflush(out_);
}

void Progress::tick() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    draw(false);
    wake_.wait_for(lock, std::chrono::milliseconds(250));
  }
}

void Progress::begin(const char *name, const std::string &what, Unit unit,
                     const char *noun) {
  end();
  if (style_ == Style::Quiet)
    return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    setStep(name, what, unit, noun);
    open_ = true;
    stop_ = false;
    done_ = total_ = 0;
    drawnWidth_ = 0;
    start_ = std::chrono::steady_clock::now();
  }
  if (style_ == Style::Lines) {
    std::fprintf(out_, "pinferc: %s\n", what.c_str());
    std::fflush(out_);
    return;
  }
  struct winsize ws {};
  columns_ = ::ioctl(::fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0
                 ? ws.ws_col
                 : 80;
  ticker_ = std::thread([this] { tick(); });
}

void Progress::beginOnUpdate(const char *name, const std::string &what,
                             Unit unit, const char *noun) {
  end();
  if (style_ == Style::Quiet)
    return;
  std::lock_guard<std::mutex> lock(mu_);
  pending_ = true;
  setStep(name, what, unit, noun);
}

void Progress::setStep(const char *name, const std::string &what, Unit unit,
                       const char *noun) {
  name_ = name;
  what_ = what;
  unit_ = unit;
  noun_ = noun;
}

void Progress::update(uint64_t done, uint64_t total) {
  if (style_ == Style::Quiet)
    return;
  std::unique_lock<std::mutex> lock(mu_);
  if (pending_) {
    pending_ = false;
    std::string what = what_;
    Unit unit = unit_;
    const char *name = name_, *noun = noun_;
    lock.unlock();
    begin(name, what, unit, noun);
    lock.lock();
  }
  done_ = done;
  total_ = total;
}

void Progress::end() {
  if (style_ == Style::Quiet)
    return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = false;
    if (!open_)
      return;
    open_ = false;
    stop_ = true;
  }
  wake_.notify_all();
  if (ticker_.joinable())
    ticker_.join();
  std::lock_guard<std::mutex> lock(mu_);
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  if (style_ == Style::Bar)
    draw(true);
  times_.push_back({name_, secs});
}

std::string Progress::times() const {
  std::string s;
  for (const auto &[name, secs] : times_)
    s += (s.empty() ? "" : ", ") + name + " " + seconds(secs);
  return s;
}

} // namespace pinfer
