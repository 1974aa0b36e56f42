//===- Progress.h - what a long command shows while it works -*- C++ -*-===//
//
// The steps of the main job (profiling, training, placing, generating,
// packing, host compiling) on stderr. On a terminal each step is one line
// redrawn in place: a bar with its ETA where the step's size is known, the
// time spent where it is not (a host compiler says nothing of its progress).
// Elsewhere (a log, a pipe) each step is one line, written as it starts, so
// that a log says what is running without filling up with redraws.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace pinfer {

class Progress {
public:
  enum class Style { Quiet, Lines, Bar };
  enum class Unit { Items, Bytes };

  // Quiet when asked, Bar when stderr is a terminal, Lines otherwise.
  static Style styleFor(bool quiet);

  explicit Progress(Style style, std::FILE *out = stderr);
  ~Progress();
  Progress(const Progress &) = delete;
  Progress &operator=(const Progress &) = delete;

  // Starts a step: `name` for times() ("profile"), `what` for its line
  // ("profiling the built-in text"), `noun` for its items ("tokens"; unused
  // for bytes). A step still open ends.
  void begin(const char *name, const std::string &what, Unit unit = Unit::Items,
             const char *noun = "");
  // The same, but the step starts with its first update(): nothing is shown
  // for work that fails before it starts (a refused input stays one line).
  void beginOnUpdate(const char *name, const std::string &what,
                     Unit unit = Unit::Items, const char *noun = "");
  // `done` of `total` (total 0: size unknown). Any thread; cheap: the bar is
  // drawn by its own thread at most four times a second.
  void update(uint64_t done, uint64_t total);
  // update() as a callback, for the work that reports (profiling, training,
  // packing).
  std::function<void(uint64_t, uint64_t)> reporter() {
    return [this](uint64_t done, uint64_t total) { update(done, total); };
  }
  // Ends the open step (none open: nothing) and records its time. On a
  // terminal the bar's line is finished, so an error line that follows
  // starts on a line of its own.
  void end();

  // "profile 8.1 s, pack 2.0 s": each ended step's name and time, in order.
  std::string times() const;

  // One redrawn line for a step at `done` of `total` after `seconds`, `what`
  // shortened to keep it within `columns` (exposed for tests).
  static std::string barLine(const std::string &what, Unit unit,
                             const char *noun, uint64_t done, uint64_t total,
                             double seconds, size_t columns = 0);

private:
  static std::string barTail(Unit unit, const char *noun, uint64_t done,
                             uint64_t total, double seconds);
  void draw(bool final); // with mu_ held
  void setStep(const char *name, const std::string &what, Unit unit,
               const char *noun); // with mu_ held
  void tick();

  Style style_;
  std::FILE *out_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::thread ticker_;
  bool open_ = false, stop_ = false;
  bool pending_ = false; // beginOnUpdate's step, not started yet
  const char *name_ = "";
  std::string what_;
  Unit unit_ = Unit::Items;
  const char *noun_ = "";
  uint64_t done_ = 0, total_ = 0;
  size_t drawnWidth_ = 0;
  size_t columns_ = 0; // the terminal's width
  std::chrono::steady_clock::time_point start_;
  std::vector<std::pair<std::string, double>> times_;
};

} // namespace pinfer
