"""twistd plugin: ``twistd -n mailbox-appliance [--config PATH]``.

Kept tiny on purpose: Twisted imports every plugin module whenever it lists plugins, so the
appliance itself is imported only when this plugin's service is made.
"""

import os

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer

# twistd's --pidfile default: an appliance started without --pidfile keeps it in its data_dir.
TWISTD_DEFAULT_PIDFILE = "twistd.pid"


class Options(usage.Options):
    def opt_version(self):
        """Print the appliance's version (and Twisted's) and exit."""
        import twisted
        from mailbox_appliance import __version__
        print(f"mailbox-appliance {__version__} (Twisted {twisted.__version__})")
        raise SystemExit(0)

    optParameters = [
        ["config", "c", None,
         "Path of the INI configuration file (default: $MAILBOX_APPLIANCE_CONFIG, "
         "else the built-in demo defaults: loopback, unprivileged ports, ./mailbox-data)."],
    ]

    settings = None

    def postOptions(self):
        """Read the configuration now, before twistd looks at its pid file: a mistake in it is
        reported as one, even while another appliance runs.  And give each configuration its own
        pid file, in its data_dir: twistd's default (./twistd.pid) made two appliances started
        from one directory refuse each other, and left the file in a clone of the repository."""
        from mailbox_appliance import config

        path = self["config"] or os.environ.get(config.CONFIG_ENVIRONMENT_VARIABLE) or None
        try:
            self.settings = config.load(path)
        except config.ConfigError as error:
            raise SystemExit(f"mailbox-appliance: {error}") from None
        if self.parent is not None and self.parent.get("pidfile") == TWISTD_DEFAULT_PIDFILE:
            self.parent["pidfile"] = os.path.join(os.path.abspath(self.settings.server.data_dir), "twistd.pid")


@implementer(IServiceMaker, IPlugin)
class ServiceMaker:
    tapname = "mailbox-appliance"
    description = "All-in-one office mail server: SMTP, submission, outbound queue, IMAP4, POP3."
    options = Options

    def makeService(self, options):
        from mailbox_appliance import twisted_noise
        from mailbox_appliance.service import StartupError, makeService

        twisted_noise.quiet()
        try:
            return makeService(options.settings)
        except StartupError as error:
            raise SystemExit(f"mailbox-appliance: {error}") from None


serviceMaker = ServiceMaker()
