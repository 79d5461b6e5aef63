"""Sub-commands of ``av-perception``; each module has ``register(subparsers)``."""

#: modules providing sub-commands, in the order ``--help`` lists them
COMMAND_MODULES = [
    "av_perception.commands.audio",
    "av_perception.commands.process",
    "av_perception.commands.separate",
    "av_perception.commands.replay",
    "av_perception.commands.demo",
    "av_perception.commands.simulate",
    "av_perception.commands.evaluate",
    "av_perception.commands.vision",
]
