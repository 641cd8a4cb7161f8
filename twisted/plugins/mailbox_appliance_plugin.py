"""twistd plugin: ``twistd -n mailbox-appliance [--config PATH]``.

Kept tiny on purpose: Twisted imports every plugin module whenever it lists plugins, so the
appliance itself is imported only when this plugin's service is made.
"""

import os

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


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


@implementer(IServiceMaker, IPlugin)
class ServiceMaker:
    tapname = "mailbox-appliance"
    description = "All-in-one office mail server: SMTP, submission, outbound queue, IMAP4, POP3."
    options = Options

    def makeService(self, options):
        from mailbox_appliance import config
        from mailbox_appliance.service import StartupError, makeService

        path = options["config"] or os.environ.get(config.CONFIG_ENVIRONMENT_VARIABLE) or None
        try:
            return makeService(config.load(path))
        except (config.ConfigError, StartupError) as error:
            raise SystemExit(f"mailbox-appliance: {error}") from None


serviceMaker = ServiceMaker()
