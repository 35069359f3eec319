from django.contrib.auth import views as auth_views
from django.shortcuts import render

LOCKED_OUT_MESSAGE = ("Too many failed sign-in attempts for this user from this address. "
                      "Wait 15 minutes and try again, or ask an admin to unlock the account.")


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django's rule): a link cannot sign anyone out."""


def locked_out(request, credentials=None, *args, **kwargs):
    """django-axes calls this when a user name and address pair is locked out."""
    from django.contrib.auth.forms import AuthenticationForm

    form = AuthenticationForm(request)
    return render(request, "registration/login.html", {"form": form, "locked_out": LOCKED_OUT_MESSAGE}, status=429)
