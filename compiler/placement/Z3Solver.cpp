// Z3 encoding of the placement problem, solved in a forked child process
// under a hard wall-clock deadline. Z3's own timeout is not always honoured
// and tearing down a context after a long MaxSAT run has been measured at
// minutes, so the parent never waits on Z3: the child writes its answer to a
// pipe and is killed with SIGKILL when the deadline passes.
//
// Encoding (the one measured best): x[l][g] = "layer l has at least g
// granules on the GPU", chained x[l][g] => x[l][g-1]; the objective is one
// weighted soft constraint per boolean (MaxSAT), weights being utilities
// scaled to integers; the byte budget is exact.
#include "compiler/placement/PlacementProblem.h"

#include <z3++.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <numeric>
#include <poll.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

namespace pinfer {

namespace {

// Integer weights: the largest single utility maps to kScale. Utilities that
// differ by less than 1/kScale of the largest item are treated as equal,
// which bounds the precision at which "optimal" is claimed.
constexpr double kScale = 1e6;

struct Weights {
  double scale = 1;
  unsigned of(double utility) const {
    return unsigned(std::llround(std::max(0.0, utility) * scale));
  }
};

Weights makeWeights(const PlacementProblem &p) {
  double maxU = 0;
  for (const LayerProblem &lp : p.layers) {
    for (const Granule &g : lp.granules)
      maxU = std::max(maxU, g.utility);
    if (lp.hasAttention)
      maxU = std::max(maxU, lp.attention.utility);
    maxU = std::max({maxU, lp.splitCost, lp.sourceReadBytes, lp.splitReadCost});
  }
  for (const OptionalItem &o : p.globals)
    maxU = std::max(maxU, o.utility);
  Weights w;
  w.scale = maxU > 0 ? kScale / maxU : 1;
  return w;
}

// Builds and solves; runs in the child. Returns the text the parent parses:
// "optimal|feasible|none <detail>\n" then per layer "k a" and the globals.
std::string solveInChild(const PlacementProblem &p, const Assignment *seed,
                         double softTimeoutSeconds) {
  std::ostringstream os;
  try {
    z3::context ctx;
    z3::optimize opt(ctx);
    z3::params params(ctx);
    params.set("timeout", unsigned(std::max(1.0, softTimeoutSeconds * 1000)));
    // wmax improves its model step by step, so a timeout still leaves a
    // good answer; the default core-guided maxres returned only the empty
    // model within 10-30 s on 7B-like instances (docs/placement.md).
    params.set("maxsat_engine", "wmax");
    opt.set(params);
    Weights w = makeWeights(p);

    uint64_t freeBytes = p.budget - p.mandatoryBytes();
    z3::expr_vector terms(ctx);  // bytes on the GPU
    z3::expr_vector billVars(ctx);
    std::vector<int64_t> billBytes; // the saving of a whole layer < 0
    z3::expr_vector valueTerms(ctx);
    std::vector<std::vector<z3::expr>> x(p.layers.size());
    std::vector<z3::expr> att;
    z3::expr_vector firstHot(ctx);
    auto bytesTerm = [&](const z3::expr &b, int64_t bytes) {
      billVars.push_back(b);
      billBytes.push_back(bytes);
    };
    auto soft = [&](const z3::expr &b, double utility) {
      unsigned weight = w.of(utility);
      if (weight == 0)
        return;
      opt.add_soft(b, weight);
      valueTerms.push_back(
          z3::ite(b, ctx.int_val(weight), ctx.int_val(0)));
    };
    for (size_t l = 0; l < p.layers.size(); ++l) {
      const LayerProblem &lp = p.layers[l];
      for (size_t g = 0; g < lp.granules.size(); ++g) {
        std::string name = "x_" + std::to_string(l) + "_" + std::to_string(g + 1);
        x[l].push_back(ctx.bool_const(name.c_str()));
        if (g > 0)
          opt.add(z3::implies(x[l][g], x[l][g - 1]));
        bytesTerm(x[l][g], int64_t(lp.granules[g].bytes));
        soft(x[l][g], lp.granules[g].utility);
      }
      std::string name = "attn_" + std::to_string(l);
      att.push_back(ctx.bool_const(name.c_str()));
      if (!x[l].empty()) {
        // The minimum holds while the attention is on the CPU.
        z3::expr cpuAttn = lp.hasAttention ? !att[l] : ctx.bool_val(true);
        if (lp.minGranules > lp.granules.size())
          opt.add(z3::implies(cpuAttn, !x[l][0]));
        else if (lp.minGranules > 1)
          opt.add(z3::implies(cpuAttn && x[l][0], x[l][lp.minGranules - 1]));
        if (lp.hotFixedBytes)
          bytesTerm(x[l][0], int64_t(lp.hotFixedBytes));
        // The last granule (which implies all) takes the whole layer's
        // saving, as far as hotLayerBytes applies it.
        uint64_t all = lp.hotFixedBytes;
        for (const Granule &gr : lp.granules)
          all += gr.bytes;
        if (uint64_t saving = all - hotLayerBytes(lp, uint32_t(x[l].size())))
          bytesTerm(x[l].back(), -int64_t(saving));
        firstHot.push_back(x[l][0]);
        // The reads a layer keeps wholly on one device save
        // (layerUtility), as rewards: for no granule on the GPU, and for
        // none or all of them.
        soft(!x[l][0], lp.sourceReadBytes);
        soft(!x[l][0] || x[l].back(), lp.splitReadCost);
      }
      if (lp.hasAttention) {
        bytesTerm(att[l], lp.attention.bytes);
        soft(att[l], lp.attention.utility);
      } else {
        opt.add(!att[l]);
      }
      // The layer's round trip (layerUtility) as a reward, the same up to
      // a constant: for no part on the GPU, or the whole layer there.
      z3::expr any = x[l].empty() ? att[l] : (att[l] || x[l][0]);
      z3::expr whole = !x[l].empty() && lp.hasAttention
                           ? (att[l] && x[l].back())
                           : ctx.bool_val(false);
      soft(!any || whole, lp.splitCost);
    }
    std::vector<z3::expr> glob;
    for (size_t j = 0; j < p.globals.size(); ++j) {
      std::string name = "global_" + std::to_string(j);
      glob.push_back(ctx.bool_const(name.c_str()));
      bytesTerm(glob[j], p.globals[j].bytes);
      soft(glob[j], p.globals[j].utility);
    }
    // The budget as a pseudo-boolean constraint when the sizes divided by
    // their gcd fit Z3's int coefficients (its PB solver is far faster than
    // linear arithmetic here); otherwise as an exact integer sum.
    auto magnitude = [](int64_t b) { return uint64_t(b < 0 ? -b : b); };
    uint64_t g = freeBytes;
    for (int64_t b : billBytes)
      g = std::gcd(g, magnitude(b));
    if (g == 0)
      g = 1;
    bool pb = freeBytes / g <= uint64_t(INT32_MAX);
    for (int64_t b : billBytes)
      pb = pb && magnitude(b) / g <= uint64_t(INT32_MAX);
    if (billVars.size() && pb) {
      std::vector<int> coeffs;
      for (int64_t b : billBytes)
        coeffs.push_back(int(b / int64_t(g)));
      opt.add(z3::pble(billVars, coeffs.data(), int(freeBytes / g)));
    } else if (billVars.size()) {
      for (size_t i = 0; i < billVars.size(); ++i)
        terms.push_back(z3::ite(billVars[i], ctx.int_val(int64_t(billBytes[i])),
                                ctx.int_val(0)));
      opt.add(z3::sum(terms) <= ctx.int_val(freeBytes));
    }
    if (p.maxGpuLayers && firstHot.size() > p.maxGpuLayers)
      opt.add(z3::atmost(firstHot, p.maxGpuLayers));
    if (seed && valueTerms.size()) {
      // Seed: a known feasible answer bounds the objective from below, so
      // the search never returns anything worse than it.
      uint64_t seedValue = 0;
      for (size_t l = 0; l < p.layers.size(); ++l) {
        for (uint32_t g = 0; g < seed->hotGranules[l]; ++g)
          seedValue += w.of(p.layers[l].granules[g].utility);
        const LayerProblem &lp = p.layers[l];
        const bool attn = lp.hasAttention && seed->attention[l];
        if (attn)
          seedValue += w.of(lp.attention.utility);
        if ((!attn && seed->hotGranules[l] == 0) ||
            (attn && seed->hotGranules[l] == lp.granules.size() &&
             !lp.granules.empty()))
          seedValue += w.of(lp.splitCost);
        const uint32_t k = seed->hotGranules[l];
        if (k == 0 && !lp.granules.empty())
          seedValue += w.of(lp.sourceReadBytes);
        if ((k == 0 || k == lp.granules.size()) && !lp.granules.empty())
          seedValue += w.of(lp.splitReadCost);
      }
      for (size_t j = 0; j < p.globals.size(); ++j)
        if (seed->globals[j])
          seedValue += w.of(p.globals[j].utility);
      opt.add(z3::sum(valueTerms) >= ctx.int_val(seedValue));
    }

    z3::check_result r = opt.check();
    bool haveModel = false;
    z3::model m(ctx);
    if (r == z3::sat) {
      m = opt.get_model();
      haveModel = true;
      os << "optimal\n";
    } else if (r == z3::unknown) {
      try {
        m = opt.get_model();
        haveModel = m.size() > 0;
      } catch (const z3::exception &) {
        haveModel = false;
      }
      os << (haveModel ? "feasible " : "none ") << Z3_optimize_get_reason_unknown(ctx, opt)
         << "\n";
    } else {
      os << "none unsatisfiable\n";
    }
    if (haveModel) {
      for (size_t l = 0; l < p.layers.size(); ++l) {
        uint32_t k = 0;
        while (k < x[l].size() && m.eval(x[l][k], true).is_true())
          ++k;
        os << k << " " << (m.eval(att[l], true).is_true() ? 1 : 0) << "\n";
      }
      for (size_t j = 0; j < p.globals.size(); ++j)
        os << (m.eval(glob[j], true).is_true() ? 1 : 0) << "\n";
    }
  } catch (const z3::exception &e) {
    os.str("");
    os << "error " << e.msg() << "\n";
  }
  return os.str();
}

bool writeAll(int fd, const std::string &s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += size_t(n);
  }
  return true;
}

} // namespace

bool solveZ3(const PlacementProblem &p, const Assignment *seed,
             double deadlineSeconds, Z3Result &out, std::string &error) {
  using Clock = std::chrono::steady_clock;
  auto start = Clock::now();
  out = Z3Result();
  if (p.mandatoryBytes() > p.budget) {
    error = "mandatory VRAM parts exceed the budget";
    return false;
  }
  std::string why;
  if (seed && !assignmentFeasible(p, *seed, why))
    seed = nullptr; // an infeasible seed would make the problem unsat

  int fds[2];
  if (::pipe(fds) != 0) {
    error = std::string("cannot create a pipe for the Z3 child: ") +
            std::strerror(errno);
    return false;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    error = std::string("cannot fork the Z3 child: ") + std::strerror(errno);
    return false;
  }
  if (pid == 0) {
    ::close(fds[0]);
    // Z3's own timeout fires a little before the hard deadline so that the
    // child can still report its best model.
    double soft = std::max(0.05, deadlineSeconds - std::min(
                                     1.0, 0.15 * deadlineSeconds));
    std::string text = solveInChild(p, seed, soft);
    writeAll(fds[1], text);
    ::_exit(0); // skip destructors and atexit handlers of the parent's state
  }
  ::close(fds[1]);

  std::string text;
  bool killed = false;
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(deadlineSeconds));
  char buf[65536];
  for (;;) {
    auto now = Clock::now();
    if (now >= deadline) {
      killed = true;
      break;
    }
    int ms = int(std::chrono::duration_cast<std::chrono::milliseconds>(
                     deadline - now)
                     .count()) +
             1;
    struct pollfd pfd = {fds[0], POLLIN, 0};
    int r = ::poll(&pfd, 1, ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue; // timed out: the loop head notices the deadline
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; // EOF: the child has written everything
    text.append(buf, size_t(n));
  }
  ::close(fds[0]);
  if (killed)
    ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();

  if (killed) {
    out.outcome = Z3Outcome::Timeout;
    char d[96];
    std::snprintf(d, sizeof d, "killed at the %.1f s deadline",
                  deadlineSeconds);
    out.detail = d;
    return true;
  }
  std::istringstream in(text);
  std::string status0, detail;
  in >> status0;
  std::getline(in, detail);
  if (!detail.empty() && detail[0] == ' ')
    detail.erase(0, 1);
  out.detail = detail;
  if (status0 == "optimal" || status0 == "feasible") {
    Assignment a;
    a.hotGranules.resize(p.layers.size());
    a.attention.resize(p.layers.size());
    a.globals.resize(p.globals.size());
    bool ok = true;
    for (size_t l = 0; l < p.layers.size() && ok; ++l) {
      int at = 0;
      ok = bool(in >> a.hotGranules[l] >> at);
      a.attention[l] = at != 0;
    }
    for (size_t j = 0; j < p.globals.size() && ok; ++j) {
      int g = 0;
      ok = bool(in >> g);
      a.globals[j] = g != 0;
    }
    if (!ok) {
      out.outcome = Z3Outcome::Failed;
      out.detail = "the Z3 child's answer was cut short";
      return true;
    }
    if (!assignmentFeasible(p, a, why)) {
      out.outcome = Z3Outcome::Failed;
      out.detail = "Z3's answer is infeasible: " + why;
      return true;
    }
    out.outcome =
        status0 == "optimal" ? Z3Outcome::Optimal : Z3Outcome::Feasible;
    out.best = a;
    out.value = assignmentUtility(p, a);
    return true;
  }
  if (status0 == "none" && detail != "unsatisfiable") {
    out.outcome = Z3Outcome::Timeout;
    if (out.detail.empty())
      out.detail = "no answer";
    return true;
  }
  out.outcome = Z3Outcome::Failed;
  if (status0 == "none")
    out.detail = "Z3 found the problem unsatisfiable";
  else if (status0 == "error")
    out.detail = "Z3 error: " + detail;
  else if (WIFSIGNALED(status))
    out.detail = "the Z3 child died of signal " +
                 std::to_string(WTERMSIG(status));
  else
    out.detail = "the Z3 child gave no answer";
  return true;
}

} // namespace pinfer
