"""Safety envelope: no emitted command ever leaves it, whatever the policy outputs."""
import inspect
import textwrap

import numpy as np
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from diffusion_reward.errors import UserError
from diffusion_reward.safety import envelope as envelope_module
from diffusion_reward.safety import ALLEGRO_Q_MAX, ALLEGRO_Q_MIN, ArmCommand, SafeCommand, SafetyConfig, \
    SafetyEnvelope, Stop

NOW = 10**18
FRESH = {"image": NOW - 10**7, "joint_states": NOW - 10**6}
HOME = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])
HAND_MID = (np.asarray(ALLEGRO_Q_MIN) + np.asarray(ALLEGRO_Q_MAX)) / 2

finite = st.one_of(st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3),
                   st.floats(allow_nan=False, allow_infinity=False, width=64))  # incl. +-1e308
poison = st.sampled_from([np.nan, np.inf, -np.inf])
FIELDS = ("joint_positions", "gripper_width", "gripper_force", "gripper_speed", "hand_positions")


def _command(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(
        ArmCommand,
        joint_positions=st.one_of(st.lists(values, min_size=7, max_size=7),
                                  st.lists(st.floats(-0.3, 0.3), min_size=7, max_size=7).map(lambda d: HOME + d)),
        gripper_width=st.one_of(st.none(), values),
        gripper_force=st.one_of(st.none(), values),
        gripper_speed=st.one_of(st.none(), values),
        hand_positions=st.one_of(st.none(), st.lists(values, min_size=16, max_size=16),
                                 st.lists(st.floats(-0.2, 0.2), min_size=16, max_size=16).map(lambda d: HAND_MID + d)),
    )


@st.composite
def _poisoned(draw):
    """A policy output with NaN/inf in one place."""
    command = draw(_command(finite))
    name = draw(st.sampled_from(FIELDS))
    value = draw(poison)
    if name in ("joint_positions", "hand_positions"):
        array = np.array(getattr(command, name) if getattr(command, name) is not None else HAND_MID, dtype=float)
        array[draw(st.integers(0, len(array) - 1))] = value
        value = array
    setattr(command, name, value)
    return command


@st.composite
def _misshapen_gripper(draw):
    """A policy output whose gripper value is not one number (a vector, an empty list, a string)."""
    command = draw(_command(finite))
    setattr(command, draw(st.sampled_from(FIELDS[1:4])), draw(st.sampled_from([[0.02, 0.04], [], np.zeros(2), "0.04"])))
    return command


def _weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of the strategies, drawn with the given weights (st.one_of drops repeated strategies: no weights)."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


# (command, must the envelope stop for it?)
commands = _weighted((4, _command(finite).map(lambda c: (c, False))), (1, _poisoned().map(lambda c: (c, True))),
                     (1, _misshapen_gripper().map(lambda c: (c, True))))
measured_offsets = st.lists(st.floats(-0.25, 0.25), min_size=7, max_size=7)
MAX_AGE_NS = SafetyConfig().max_observation_age_s * 1e9
FRESH_OBSERVATION = (NOW, NOW - 5 * 10**6, NOW)  # (clock, image stamp, joint_states stamp)
unreadable = st.sampled_from([np.nan, np.inf, -np.inf, "12", [NOW], True, 10**30])
aged = st.one_of(st.floats(-500, 500), st.floats(200.001, 500), st.floats(-500, -200.001)).map(  # the limit: 200 ms
    lambda ms: NOW - int(ms * 1e6))  # fresh, and often stale or from the future
any_stamp = st.one_of(aged, unreadable, st.none())
# (clock, image stamp, joint_states stamp): half fresh; else readable but maybe stale or from the future (so that
# the age checks are exercised on their own), or with a missing or unreadable clock or stamp
observations = _weighted((2, st.just(FRESH_OBSERVATION)), (2, st.tuples(st.just(NOW), aged, aged)),
                         (1, st.tuples(st.one_of(st.just(NOW), unreadable), any_stamp, any_stamp)))


def _readable_ns(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 2**63


def _observations_untrusted(clock, image_stamp, joint_stamp) -> bool:
    """The spec of the watchdog: both required streams stamped within max_observation_age_s of a readable clock."""
    return not (_readable_ns(clock) and all(_readable_ns(s) and abs(clock - s) <= MAX_AGE_NS
                                            for s in (image_stamp, joint_stamp)))


def check_envelope_property(sequence):
    """Every SafeCommand is inside the envelope; bad commands and untrusted observations stop it, and stops latch."""
    envelope = SafetyEnvelope(SafetyConfig())
    hand_ref = HAND_MID
    stopped = False
    for (command, bad_command), offset, (clock, image_stamp, joint_stamp) in sequence:
        measured = np.clip(HOME + np.asarray(offset), envelope.kinematics.q_min, envelope.kinematics.q_max)
        try:
            out = envelope.filter(command, clock, {"image": image_stamp, "joint_states": joint_stamp}, measured,
                                  measured_hand=HAND_MID)
        except Exception as exc:  # it must fail closed: a Stop, never an exception
            raise AssertionError(f"filter raised {exc!r}") from exc
        must_stop = stopped or bad_command or _observations_untrusted(clock, image_stamp, joint_stamp)
        if must_stop:
            assert isinstance(out, Stop), (command, clock, image_stamp, joint_stamp, out)
        if isinstance(out, Stop):
            stopped = True
            np.testing.assert_array_equal(out.hold_positions, measured)
            continue
        _assert_inside(envelope, out, measured, hand_ref)
        if out.hand_positions is not None:
            hand_ref = out.hand_positions


sequences = st.lists(st.tuples(commands, measured_offsets, observations), min_size=1, max_size=6)


def _step(observation, command: ArmCommand | None = None):
    """One step of a sequence: HOME held (a command that needs no stop) unless `command` (one that needs a stop)."""
    return (command or ArmCommand(joint_positions=HOME.copy()), command is not None), [0.0] * 7, observation


# one sequence per way the envelope must fail closed, always tried before the generated ones: the mutation test
# below must not depend on what the generator happens to draw
KNOWN_STOPS = [
    [_step((NOW, NOW - 300 * 10**6, NOW))],  # a stale image
    [_step((NOW, NOW, NOW + 300 * 10**6))],  # joint states from the future
    [_step((NOW, np.nan, NOW))],  # an unreadable stamp
    [_step(("12", NOW, NOW))],  # an unreadable clock
    [_step(FRESH_OBSERVATION, ArmCommand(joint_positions=np.r_[HOME[:6], np.nan]))],  # a NaN command
    [_step(FRESH_OBSERVATION, ArmCommand(joint_positions=HOME.copy(), gripper_width=[0.02, 0.04]))],
]


def _with_known_stops(test):
    for sequence in KNOWN_STOPS:
        test = example(sequence)(test)
    return test


def _assert_inside(envelope: SafetyEnvelope, out: SafeCommand, measured: np.ndarray, hand_ref: np.ndarray):
    c = envelope.config
    q = out.joint_positions
    assert q.shape == (7,) and np.all(np.isfinite(q))
    assert np.all(q >= np.minimum(envelope.q_low, measured) - 1e-12)
    assert np.all(q <= np.maximum(envelope.q_high, measured) + 1e-12)
    assert envelope.kinematics.within_limits(q)
    assert np.all(np.abs(q - measured) <= envelope.joint_step + 1e-12)
    assert np.all(np.abs(q - measured) <= c.max_joint_velocity * c.control_period_s + 1e-12)
    tcp = envelope.kinematics.fk(q)[:3, 3]
    np.testing.assert_allclose(out.tcp_position, tcp)
    assert np.all(tcp >= envelope.box_low) and np.all(tcp <= envelope.box_high)
    assert np.linalg.norm(tcp - envelope.kinematics.fk(measured)[:3, 3]) <= c.max_ee_speed * c.control_period_s + 1e-9
    if out.gripper_width is not None:
        assert 0.0 <= out.gripper_width <= c.gripper_max_width
    if out.gripper_force is not None:
        assert 0.0 <= out.gripper_force <= c.gripper_max_force
    if out.gripper_speed is not None:
        assert 0.0 < out.gripper_speed <= c.gripper_max_speed
    if out.hand_positions is not None:
        hand = out.hand_positions
        assert np.all(np.isfinite(hand))
        assert np.all(hand >= np.asarray(ALLEGRO_Q_MIN)) and np.all(hand <= np.asarray(ALLEGRO_Q_MAX))
        assert np.all(np.abs(hand - hand_ref) <= c.hand_max_step + 1e-12)


@settings(max_examples=200, deadline=None)
@_with_known_stops
@given(sequences)
def test_no_emitted_command_leaves_the_envelope(sequence):
    check_envelope_property(sequence)


# (owner, function, condition that the mutant replaces by False): each deletes one check of the envelope (not the
# missing-stamp check: without it a missing stamp is refused as unreadable, the same Stop)
MUTANTS = {
    "staleness check": (SafetyEnvelope, "_stale_stream", "age_ns > max_age_ns"),
    "future-stamp check": (SafetyEnvelope, "_stale_stream", "age_ns < -max_age_ns"),
    "unreadable-stamp check": (SafetyEnvelope, "_stale_stream", "stamp is None"),
    "unreadable-clock check": (SafetyEnvelope, "_stale_stream", "now is None"),
    "NaN check": (envelope_module, "_all_finite", "not np.all(np.isfinite(np.asarray(value, dtype=np.float64)))"),
}


@pytest.mark.parametrize("removed", MUTANTS)
def test_the_property_fails_when_a_check_is_removed(monkeypatch, removed):
    """Mutation test: the property above must notice any one deleted watchdog or finiteness check (the condition
    replaced by False in the envelope's own source)."""
    owner, name, condition = MUTANTS[removed]
    source = textwrap.dedent(inspect.getsource(getattr(owner, name)))
    assert source.count(f"if {condition}:") == 1
    namespace = dict(vars(envelope_module))
    exec(source.replace(f"if {condition}:", "if False:"), namespace)
    monkeypatch.setattr(owner, name, namespace[name])
    mutant_run = settings(max_examples=300, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                          report_multiple_bugs=False)(_with_known_stops(given(sequences)(check_envelope_property)))
    with pytest.raises(AssertionError):
        mutant_run()


def test_non_finite_action_stops_and_latches_until_reset():
    envelope = SafetyEnvelope()
    good = ArmCommand(joint_positions=HOME + 0.01)
    assert isinstance(envelope.filter(good, NOW, FRESH, HOME), SafeCommand)
    stop = envelope.filter(ArmCommand(joint_positions=HOME, gripper_width=float("nan")), NOW, FRESH, HOME)
    assert isinstance(stop, Stop) and "non-finite" in stop.reason
    np.testing.assert_array_equal(stop.hold_positions, HOME)
    again = envelope.filter(good, NOW, FRESH, HOME)
    assert isinstance(again, Stop) and again.reason.startswith("latched: non-finite")
    assert envelope.reset()
    assert isinstance(envelope.filter(good, NOW, FRESH, HOME), SafeCommand)


def test_estop_blocks_until_released_and_reset():
    envelope = SafetyEnvelope()
    command = ArmCommand(joint_positions=HOME)
    envelope.engage_estop()
    assert isinstance(envelope.filter(command, NOW, FRESH, HOME), Stop)
    assert not envelope.reset()  # not while engaged
    envelope.release_estop()
    assert isinstance(envelope.filter(command, NOW, FRESH, HOME), Stop)  # still latched
    assert envelope.reset()
    assert isinstance(envelope.filter(command, NOW, FRESH, HOME), SafeCommand)


@pytest.mark.parametrize("stamps, reason", [
    ({"image": NOW - 3 * 10**8, "joint_states": NOW}, "image is stale"),
    ({"joint_states": NOW}, "no image received"),
    ({"image": NOW, "joint_states": NOW + 10**9}, "in the future"),
])
def test_watchdog_stops_on_stale_missing_or_future_observations(stamps, reason):
    out = SafetyEnvelope().filter(ArmCommand(joint_positions=HOME), NOW, stamps, HOME)
    assert isinstance(out, Stop) and reason in out.reason


def test_large_steps_are_shortened_and_reported():
    envelope = SafetyEnvelope()
    out = envelope.filter(ArmCommand(joint_positions=HOME + 1.0, gripper_width=0.5, gripper_force=500.0),
                          NOW, FRESH, HOME)
    assert isinstance(out, SafeCommand)
    assert np.max(np.abs(out.joint_positions - HOME)) <= envelope.joint_step + 1e-12
    assert np.max(np.abs(out.joint_positions - HOME)) > 0  # it still moves toward the target
    assert out.gripper_width == 0.08 and out.gripper_force == 40.0
    assert {"joint_step", "gripper_width", "gripper_force"} <= set(out.clipped)


def test_tcp_is_kept_inside_the_workspace_box():
    config = SafetyConfig(workspace_max=(0.75, 0.35, 0.49))  # ceiling just above the ready pose (z = 0.487)
    envelope = SafetyEnvelope(config)
    up = HOME.copy()
    up[3] += 0.05  # unbending the elbow raises the TCP
    out = envelope.filter(ArmCommand(joint_positions=up), NOW, FRESH, HOME)
    assert isinstance(out, SafeCommand) and "tcp_workspace_or_step" in out.clipped
    assert out.tcp_position[2] <= 0.49
    outside = SafetyEnvelope(SafetyConfig(workspace_max=(0.75, 0.35, 0.40)))
    stop = outside.filter(ArmCommand(joint_positions=HOME), NOW, FRESH, HOME)
    assert isinstance(stop, Stop) and "outside the workspace" in stop.reason


def test_shadow_mode_marks_commands_and_bad_config_is_refused():
    out = SafetyEnvelope(SafetyConfig(shadow_mode=True)).filter(ArmCommand(joint_positions=HOME), NOW, FRESH, HOME)
    assert isinstance(out, SafeCommand) and out.shadow
    with pytest.raises(UserError, match="workspace_min"):
        SafetyEnvelope(SafetyConfig(workspace_min=(1.0, 0.0, 0.0), workspace_max=(0.5, 1.0, 1.0)))
    with pytest.raises(UserError, match="max_joint_velocity"):
        SafetyEnvelope(SafetyConfig(max_joint_velocity=float("nan")))


@pytest.mark.parametrize("clock, stamps, command", [
    (float("nan"), FRESH, ArmCommand(joint_positions=HOME)),
    (float("inf"), FRESH, ArmCommand(joint_positions=HOME)),
    ("now", FRESH, ArmCommand(joint_positions=HOME)),
    (NOW, {**FRESH, "image": float("nan")}, ArmCommand(joint_positions=HOME)),
    (NOW, {**FRESH, "joint_states": -float("inf")}, ArmCommand(joint_positions=HOME)),
    (NOW, {**FRESH, "image": str(NOW)}, ArmCommand(joint_positions=HOME)),
    (NOW, {**FRESH, "image": np.array([NOW])}, ArmCommand(joint_positions=HOME)),
    (NOW, None, ArmCommand(joint_positions=HOME)),
    (NOW, FRESH, ArmCommand(joint_positions=HOME, gripper_width=[0.02, 0.04])),
    (NOW, FRESH, ArmCommand(joint_positions=HOME, gripper_force=np.zeros(2))),
    (NOW, FRESH, ArmCommand(joint_positions=HOME, gripper_speed="0.05")),
], ids=["nan clock", "inf clock", "str clock", "nan stamp", "-inf stamp", "str stamp", "array stamp", "no stamps",
        "2-vector width", "array force", "str speed"])
def test_what_the_envelope_cannot_interpret_gives_a_latched_stop(clock, stamps, command):
    envelope = SafetyEnvelope()
    assert isinstance(envelope.filter(command, clock, stamps, HOME), Stop)
    assert isinstance(envelope.filter(ArmCommand(joint_positions=HOME), NOW, FRESH, HOME), Stop)  # latched
    assert envelope.reset()
    assert isinstance(envelope.filter(ArmCommand(joint_positions=HOME), NOW, FRESH, HOME), SafeCommand)


@pytest.mark.parametrize("streams", [(), [], "image", ("image", "")])
def test_a_config_without_required_streams_is_refused(streams):
    with pytest.raises(UserError, match="required_streams"):
        SafetyEnvelope(SafetyConfig(required_streams=streams))
