// The plugin's user settings (--cohort, COHORT_*) and administrator arguments
// (plugstack.conf): what they accept, what wins, and the messages for what they refuse.
#include "spank/settings.hpp"

#include <gtest/gtest.h>

#include <map>

#include "common/error.hpp"

namespace cohort::spank {
namespace {

using topology::NicPolicy;

// The message of the input error `f` throws; fails the test when it throws none.
template <typename F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an input error";
  return "";
}

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

TEST(Settings, BareOptionTurnsPlacementOnAndLeavesTheRestUnset) {
  Settings s = parse_settings("");
  EXPECT_EQ(s.enabled, true);
  EXPECT_FALSE(s.verbose);
  EXPECT_FALSE(s.gpus_per_rank);
  EXPECT_FALSE(s.threads);
  EXPECT_FALSE(s.smt);
  EXPECT_FALSE(s.nic);
}

TEST(Settings, ParsesEveryKindOfSetting) {
  Settings s = parse_settings("verbose,gpus-per-rank:2,threads:8,smt:on,nic:all");
  EXPECT_EQ(s.enabled, true);
  EXPECT_EQ(s.verbose, true);
  EXPECT_EQ(s.gpus_per_rank, 2);
  EXPECT_EQ(s.threads, 8);
  EXPECT_EQ(s.smt, true);
  EXPECT_EQ(s.nic, NicPolicy::all);
  EXPECT_EQ(parse_settings("smt:off,nic:nearest,verbose:off").smt, false);
  EXPECT_EQ(parse_settings("nic:nearest").nic, NicPolicy::nearest);
  EXPECT_EQ(parse_settings("verbose:off").verbose, false);
}

TEST(Settings, OffTurnsPlacementOffAndOnTurnsItOn) {
  EXPECT_EQ(parse_settings("off").enabled, false);
  EXPECT_EQ(parse_settings("off,verbose").enabled, false);
  EXPECT_EQ(parse_settings("on").enabled, true);
}

TEST(Settings, GpusPerRankZeroAsksForACpuOnlyPlan) { EXPECT_EQ(parse_settings("gpus-per-rank:0").gpus_per_rank, 0); }

TEST(Settings, ThreadsOutOfBoundsNameTheOptionAndTheRange) {
  EXPECT_EQ(refusal([] { parse_settings("threads:0"); }), "--cohort=threads:0: threads must be 1..1024");
  EXPECT_EQ(refusal([] { parse_settings("verbose,threads:1025"); }), "--cohort=threads:1025: threads must be 1..1024");
  EXPECT_EQ(refusal([] { parse_settings("threads:99999999999"); }), "--cohort=threads:99999999999: threads must be 1..1024");
}

TEST(Settings, NonNumbersAreRefusedStrictly) {
  EXPECT_EQ(refusal([] { parse_settings("threads:4x"); }), "--cohort=threads:4x: threads must be a whole number 1..1024");
  EXPECT_EQ(refusal([] { parse_settings("threads:-1"); }), "--cohort=threads:-1: threads must be 1..1024");
  EXPECT_EQ(refusal([] { parse_settings("threads: 4"); }), "--cohort=threads: 4: threads must be a whole number 1..1024");
  EXPECT_EQ(refusal([] { parse_settings("gpus-per-rank:"); }),
            "--cohort=gpus-per-rank:: gpus-per-rank must be a whole number 0..64");
  EXPECT_EQ(refusal([] { parse_settings("gpus-per-rank:65"); }), "--cohort=gpus-per-rank:65: gpus-per-rank must be 0..64");
}

TEST(Settings, SwitchesAndNicPolicyListTheirAcceptedValues) {
  EXPECT_EQ(refusal([] { parse_settings("smt:yes"); }), "--cohort=smt:yes: smt must be on or off");
  EXPECT_EQ(refusal([] { parse_settings("nic:far"); }), "--cohort=nic:far: nic must be nearest or all");
}

TEST(Settings, UnknownSettingsListWhatIsAccepted) {
  EXPECT_EQ(refusal([] { parse_settings("gpus:2"); }),
            "--cohort=gpus:2: unknown setting 'gpus' (accepted: on, off, verbose, gpus-per-rank:K, threads:T, smt:on|off, nic:nearest|all)");
  EXPECT_EQ(refusal([] { parse_settings("loud"); }),
            "--cohort=loud: unknown setting 'loud' (accepted: on, off, verbose, gpus-per-rank:K, threads:T, smt:on|off, nic:nearest|all)");
  // Its variable's name is not a setting of the option.
  EXPECT_NE(refusal([] { parse_settings("placement:on"); }).find("unknown setting 'placement'"), std::string::npos);
}

TEST(Settings, ValueSettingsWithoutAValueSayHowToWriteThem) {
  EXPECT_EQ(refusal([] { parse_settings("threads"); }), "--cohort=threads: threads needs a value, as in threads:1..1024");
}

TEST(Settings, RepeatsContradictionsAndEmptyItemsAreRefused) {
  EXPECT_EQ(refusal([] { parse_settings("threads:2,threads:4"); }), "--cohort=threads:2,threads:4: threads is given twice");
  EXPECT_EQ(refusal([] { parse_settings("on,off"); }), "--cohort=on,off: placement is given twice");
  EXPECT_NE(refusal([] { parse_settings("verbose,,threads:2"); }).find("empty setting"), std::string::npos);
  EXPECT_NE(refusal([] { parse_settings("verbose,"); }).find("empty setting"), std::string::npos);
}

TEST(SettingsEnvironment, EachSettingHasAVariable) {
  Settings s = settings_from_environment(env_of({{"COHORT_PLACEMENT", "on"},
                                                 {"COHORT_VERBOSE", "on"},
                                                 {"COHORT_GPUS_PER_RANK", "1"},
                                                 {"COHORT_THREADS", "3"},
                                                 {"COHORT_SMT", "on"},
                                                 {"COHORT_NIC", "all"}}));
  EXPECT_EQ(s.enabled, true);
  EXPECT_EQ(s.verbose, true);
  EXPECT_EQ(s.gpus_per_rank, 1);
  EXPECT_EQ(s.threads, 3);
  EXPECT_EQ(s.smt, true);
  EXPECT_EQ(s.nic, NicPolicy::all);
  EXPECT_EQ(setting_variables().size(), 6u);
}

TEST(SettingsEnvironment, UnsetAndEmptyVariablesLeaveSettingsUnset) {
  EXPECT_EQ(settings_from_environment(env_of({})), Settings{});
  EXPECT_EQ(settings_from_environment(env_of({{"COHORT_THREADS", ""}})), Settings{});
}

TEST(SettingsEnvironment, BadVariablesNameTheVariable) {
  EXPECT_EQ(refusal([] { settings_from_environment(env_of({{"COHORT_THREADS", "0"}})); }),
            "COHORT_THREADS=0: threads must be 1..1024");
  EXPECT_EQ(refusal([] { settings_from_environment(env_of({{"COHORT_PLACEMENT", "yes"}})); }),
            "COHORT_PLACEMENT=yes: placement must be on or off");
}

TEST(SettingsMerge, CommandLineWinsSettingBySetting) {
  auto env = env_of({{"COHORT_THREADS", "2"}, {"COHORT_NIC", "all"}, {"COHORT_VERBOSE", "on"}});
  Settings s = merge_settings(env, std::string("threads:6,verbose:off"));
  EXPECT_EQ(s.threads, 6);
  EXPECT_EQ(s.verbose, false);
  EXPECT_EQ(s.nic, NicPolicy::all);  // not on the command line: the variable's
  EXPECT_EQ(s.enabled, true);
}

TEST(SettingsMerge, WithoutTheOptionOnlyVariablesCount) {
  Settings s = merge_settings(env_of({{"COHORT_THREADS", "2"}}), std::nullopt);
  EXPECT_EQ(s.threads, 2);
  EXPECT_FALSE(s.enabled);
}

TEST(SettingsMerge, OptionOffOverridesPlacementVariable) {
  EXPECT_EQ(merge_settings(env_of({{"COHORT_PLACEMENT", "on"}}), std::string("off")).enabled, false);
  EXPECT_EQ(merge_settings(env_of({{"COHORT_PLACEMENT", "off"}}), std::string("")).enabled, true);
}

TEST(SettingsMerge, AdministratorDefaultDecidesWhenNobodyAsks) {
  PluginArgs on, off;
  on.default_on = true;
  EXPECT_TRUE(placement_enabled(Settings{}, on));
  EXPECT_FALSE(placement_enabled(Settings{}, off));
  EXPECT_TRUE(placement_enabled(parse_settings(""), off));
  EXPECT_FALSE(placement_enabled(parse_settings("off"), on));
}

TEST(PluginArgs, DefaultsPlaceOnlyOnRequestWithTorchrunPorts) {
  PluginArgs a = parse_plugin_args({});
  EXPECT_FALSE(a.default_on);
  EXPECT_EQ(a.topology_file, "");
  EXPECT_EQ(a.port_base, 29500);
  EXPECT_EQ(a.port_range, 2000);
}

TEST(PluginArgs, ParsesEveryArgument) {
  PluginArgs a = parse_plugin_args({"default=on", "topology=/etc/cohort/node.xml", "port_base=40000", "port_range=100"});
  EXPECT_TRUE(a.default_on);
  EXPECT_EQ(a.topology_file, "/etc/cohort/node.xml");
  EXPECT_EQ(a.port_base, 40000);
  EXPECT_EQ(a.port_range, 100);
  EXPECT_FALSE(parse_plugin_args({"default=off"}).default_on);
}

TEST(PluginArgs, UnknownKeyIsRefusedWithTheAcceptedList) {
  EXPECT_EQ(refusal([] { parse_plugin_args({"defualt=on"}); }),
            "plugstack.conf: defualt=on: unknown argument 'defualt' (accepted: default=on|off, topology=FILE, port_base=N, port_range=N)");
}

TEST(PluginArgs, MalformedArgumentsAreRefused) {
  EXPECT_NE(refusal([] { parse_plugin_args({"verbose"}); }).find("plugstack.conf: verbose: expected KEY=VALUE"),
            std::string::npos);
  EXPECT_NE(refusal([] { parse_plugin_args({"=on"}); }).find("expected KEY=VALUE"), std::string::npos);
  EXPECT_EQ(refusal([] { parse_plugin_args({"default=maybe"}); }), "plugstack.conf: default=maybe: default must be on or off");
  EXPECT_EQ(refusal([] { parse_plugin_args({"default=on", "default=off"}); }),
            "plugstack.conf: default=off: default is given twice");
}

TEST(PluginArgs, TopologyMustBeAnAbsolutePath) {
  EXPECT_EQ(refusal([] { parse_plugin_args({"topology=node.xml"}); }),
            "plugstack.conf: topology=node.xml: topology must be an absolute path to an hwloc XML file");
  EXPECT_NE(refusal([] { parse_plugin_args({"topology="}); }).find("absolute path"), std::string::npos);
}

TEST(PluginArgs, PortsStayInRange) {
  EXPECT_EQ(refusal([] { parse_plugin_args({"port_base=0"}); }), "plugstack.conf: port_base=0: port_base must be 1..65535");
  EXPECT_EQ(refusal([] { parse_plugin_args({"port_range=x"}); }),
            "plugstack.conf: port_range=x: port_range must be a whole number 1..65535");
  EXPECT_EQ(refusal([] { parse_plugin_args({"port_base=65000", "port_range=1000"}); }),
            "plugstack.conf: port_base=65000 port_range=1000: ports must stay below 65536");
  EXPECT_EQ(parse_plugin_args({"port_base=65000", "port_range=536"}).port_range, 536);
}

}  // namespace
}  // namespace cohort::spank
