#pragma once
// Anomaly detection: while on, every op's output and every gradient a backward rule produces is
// checked for NaN and infinity, and the first one found raises a tg::Error naming the op, its
// tape entry, forward or backward, the source line that recorded it and the ranges of its inputs.
// Off by default: then it costs nothing but the engine's test of an empty hook list.
namespace tg {

void detect_anomaly(bool on);
bool anomaly_detection_enabled();

// Sets anomaly detection for a scope and restores the previous setting on exit.
class AnomalyGuard {
 public:
  explicit AnomalyGuard(bool on = true);
  ~AnomalyGuard();
  AnomalyGuard(const AnomalyGuard&) = delete;
  AnomalyGuard& operator=(const AnomalyGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace tg
