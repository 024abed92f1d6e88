// SPDX-License-Identifier: MIT
// blkcg_torture, part: Flags: every knob with its default, parsing, and the named scenarios (stress/scenarios).
// Included by stress/blkcg_torture.cc only (after its includes), inside its unnamed
// namespace's translation unit.
#pragma once

namespace {

// ---------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------

constexpr int kMaxCgroupSlots = 256;
constexpr int kMaxDiskSlots = 64;
constexpr int kMaxRolesPerKind = 16;

// Every knob, with its flag (--name=value) and default.
struct Flags {
  double seconds = 10;          // --seconds: length of the run (wall clock)
  double stat_interval = 2;     // --stat-interval: seconds between stats lines
  unsigned long seed = 1;       // --seed: every role's PRNG, fault injection, chaos
  int cpus = 4;                 // --cpus: virtual CPUs the roles are spread over
  // Role counts: --submitters --flushers --readers --cgchurners --diskchurners --iomaxers
  // --togglers --resetters (v1 only) --clocks --workers.
  int submitters = 3, flushers = 1, readers = 1, cgchurners = 1, diskchurners = 1;
  int iomaxers = 1, togglers = 1, resetters = 0, clocks = 1, workers = 1;
  int kworkers = 2;       // --kworkers: kernel worker threads (0: work runs inline)
  int cgroups = 24;       // --cgroups: live cgroups at most (slots of the path table)
  int depth = 3;          // --depth: levels below the root, 1..3
  int fixed_disks = 1;    // --fixed-disks: disks that live for the whole run
  int disks = 3;          // --disks: churned disks per disk churner
  int window = 8;         // --window: bios a submitter may have in flight
  int punt_permille = 125;  // --punt-permille: bios submitted with REQ_CGROUP_PUNT
  int quiesce_every = 1;  // --quiesce-every: deep oracle every N stat intervals; 0: at the end
  // Pauses after each operation, in microseconds: --churn-delay-us (cgchurn, iomax,
  // toggler, resetter), --disk-delay-us (diskchurn), --read-delay-us (flusher, reader).
  // Those roles are cheap next to a bio's path and would otherwise crowd the submitters
  // out of a small machine.
  int churn_delay_us = 200;
  int disk_delay_us = 2000;
  int read_delay_us = 50;
  unsigned fault_permille = 0;   // --fault-permille: each allocation fails with this chance
  unsigned chaos_permille = 0;   // --chaos-permille: seam chaos (kern::set_native_chaos)
  bool chaos_given = false;
  std::string hierarchy = "v2";  // --hierarchy=v1|v2: the legacy blkio or the v2 io controller
  // --busted=NAME: a deliberately broken variant (impl/block/busted.h, rcutorture's
  // "busted"): the run must end in FAILURE (or a sanitizer report). A busted run also
  // stops at the first stats line after a failure was seen, and turns seam chaos on (20 per
  // mille) unless --chaos-permille is given.
  // --scenario=NAME: flags from <scenario dir>/NAME.conf, under the command line's;
  // --scenario-dir=DIR (default: the scenarios directory beside this source file).
  std::string busted;
  std::string scenario;
  std::string scenario_dir;
};

using stress::parse_int;
using stress::parse_uint;

bool valid_scenario_name(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  return true;
}

bool parse_flag(Flags& f, const char* arg) {
  auto val = [&](const char* name) { return stress::flag_value(arg, name); };
  const char* v;
  const int kRoles = kMaxRolesPerKind;
  if ((v = val("--seconds"))) return stress::parse_seconds(v, &f.seconds);
  if ((v = val("--stat-interval"))) return stress::parse_seconds(v, &f.stat_interval);
  if ((v = val("--seed"))) return stress::parse_ulong(v, &f.seed);
  if ((v = val("--cpus"))) return parse_int(v, 1, kern::kMaxCpus, &f.cpus);
  if ((v = val("--submitters"))) return parse_int(v, 0, kRoles, &f.submitters);
  if ((v = val("--flushers"))) return parse_int(v, 0, kRoles, &f.flushers);
  if ((v = val("--readers"))) return parse_int(v, 0, kRoles, &f.readers);
  if ((v = val("--cgchurners"))) return parse_int(v, 0, kRoles, &f.cgchurners);
  if ((v = val("--diskchurners"))) return parse_int(v, 0, kRoles, &f.diskchurners);
  if ((v = val("--iomaxers"))) return parse_int(v, 0, kRoles, &f.iomaxers);
  if ((v = val("--togglers"))) return parse_int(v, 0, kRoles, &f.togglers);
  if ((v = val("--resetters"))) return parse_int(v, 0, kRoles, &f.resetters);
  if ((v = val("--clocks"))) return parse_int(v, 0, kRoles, &f.clocks);
  if ((v = val("--workers"))) return parse_int(v, 0, kRoles, &f.workers);
  if ((v = val("--kworkers"))) return parse_int(v, 0, kRoles, &f.kworkers);
  if ((v = val("--cgroups"))) return parse_int(v, 1, kMaxCgroupSlots, &f.cgroups);
  if ((v = val("--depth"))) return parse_int(v, 1, 3, &f.depth);
  if ((v = val("--fixed-disks"))) return parse_int(v, 0, 4, &f.fixed_disks);
  if ((v = val("--disks"))) return parse_int(v, 1, 8, &f.disks);
  if ((v = val("--window"))) return parse_int(v, 1, 64, &f.window);
  if ((v = val("--punt-permille"))) return parse_int(v, 0, 1000, &f.punt_permille);
  if ((v = val("--quiesce-every"))) return parse_int(v, 0, 1000, &f.quiesce_every);
  if ((v = val("--churn-delay-us"))) return parse_int(v, 0, 1000000, &f.churn_delay_us);
  if ((v = val("--read-delay-us"))) return parse_int(v, 0, 1000000, &f.read_delay_us);
  if ((v = val("--disk-delay-us"))) return parse_int(v, 0, 1000000, &f.disk_delay_us);
  if ((v = val("--fault-permille"))) return parse_uint(v, 1000, &f.fault_permille);
  if ((v = val("--chaos-permille"))) {
    f.chaos_given = true;
    return parse_uint(v, 1000, &f.chaos_permille);
  }
  if ((v = val("--hierarchy"))) return f.hierarchy = v, f.hierarchy == "v1" || f.hierarchy == "v2";
  if ((v = val("--busted"))) return f.busted = v, blk::busted().by_name(f.busted) != nullptr;
  if ((v = val("--scenario"))) return f.scenario = v, valid_scenario_name(f.scenario);
  if ((v = val("--scenario-dir"))) return f.scenario_dir = v, !f.scenario_dir.empty();
  return false;
}

std::string flags_text(const Flags& f) {
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "--seconds=%g --stat-interval=%g --seed=%lu --cpus=%d --submitters=%d "
                "--flushers=%d --readers=%d --cgchurners=%d --diskchurners=%d --iomaxers=%d "
                "--togglers=%d --resetters=%d --clocks=%d --workers=%d --kworkers=%d "
                "--cgroups=%d --depth=%d --fixed-disks=%d --disks=%d --window=%d --punt-permille=%d "
                "--quiesce-every=%d --churn-delay-us=%d --disk-delay-us=%d --read-delay-us=%d "
                "--fault-permille=%u "
                "--chaos-permille=%u --hierarchy=%s",
                f.seconds, f.stat_interval, f.seed, f.cpus, f.submitters, f.flushers, f.readers,
                f.cgchurners, f.diskchurners, f.iomaxers, f.togglers, f.resetters, f.clocks,
                f.workers, f.kworkers, f.cgroups, f.depth, f.fixed_disks, f.disks, f.window, f.punt_permille,
                f.quiesce_every, f.churn_delay_us, f.disk_delay_us, f.read_delay_us, f.fault_permille,
                f.chaos_permille, f.hierarchy.c_str());
  std::string s = buf;
  if (!f.busted.empty()) s += " --busted=" + f.busted;
  if (!f.scenario.empty()) s += " --scenario=" + f.scenario;
  return s;
}

// The directory of this source file: scenarios live beside it unless --scenario-dir says.
std::string default_scenario_dir() {
  std::string file = __FILE__;
  const size_t slash = file.rfind('/');
  return (slash == std::string::npos ? std::string(".") : file.substr(0, slash)) + "/scenarios";
}

// Reads stress/scenarios/NAME.conf: flags separated by white space, '#' starts a comment.
bool load_scenario(Flags& f, std::string* err) {
  const std::string dir = f.scenario_dir.empty() ? default_scenario_dir() : f.scenario_dir;
  const std::string path = dir + "/" + f.scenario + ".conf";
  std::ifstream in(path);
  if (!in) {
    *err = "cannot read scenario file " + path;
    return false;
  }
  std::string line;
  while (std::getline(in, line)) {
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string w;
    while (words >> w) {
      if (w.rfind("--scenario", 0) == 0 || !parse_flag(f, w.c_str())) {
        *err = "bad flag '" + w + "' in " + path;
        return false;
      }
    }
  }
  return true;
}


}  // namespace
