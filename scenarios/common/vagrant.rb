# Shared by the scenarios' Vagrantfiles: defines the machines of a scenario
# and the Ansible provisioners that set them up.
#
#   require_relative "../common/vagrant"
#   Mahiru.scenario(config, name: "compute_to_data", subnet: "192.168.213", machines: {...})
#
# Providers: libvirt and VirtualBox run a Debian 12 box (MAHIRU_VAGRANT_BOX
# to choose another); docker runs each machine as a container built from
# common/machine/Dockerfile, with sshd, and for registry and site machines a
# container engine of their own (hence the extra capabilities). Pick one with
# `vagrant up --provider NAME` or VAGRANT_DEFAULT_PROVIDER.
#
# Provisioners: `base` and `mahiru_up` run on `vagrant up`; `mahiru_down`,
# `configure_sites` and `run_experiment` only when asked for with
# `vagrant provision --provision-with NAME [MACHINE...]`. Extra arguments for
# ansible-playbook can be given in MAHIRU_ANSIBLE_ARGS; MAHIRU_WIPE=1 makes
# `mahiru_down` delete the registry's and the sites' data too (a clean slate).
require "shellwords"

# Ansible is much faster when it sends modules through the open SSH
# connection instead of copying them first (the machines' sudo allows it).
ENV["ANSIBLE_PIPELINING"] ||= "1"

# The machines must come up one after the other, in the order they are
# defined: each is provisioned as it comes up, a site needs the registry to
# exist, a client needs its site, and all share the certificates made on the
# first provisioning. Some providers (docker) would otherwise work in parallel.
ENV["VAGRANT_NO_PARALLEL"] ||= "1"

module Mahiru
  COMMON_DIR = File.expand_path(__dir__)
  DEFAULT_BOX = "debian/bookworm64"

  # The facts every playbook needs about all machines (see common/vars.yml).
  def self.network(machines, subnet)
    by_role = ->(role) { machines.select { |_, m| m[:role] == role }.keys.map(&:to_s) }
    {
      "registry" => by_role.call(:registry),
      "sites" => by_role.call(:site),
      "clients" => by_role.call(:client),
      "address" => machines.to_h { |name, m| [name.to_s, "#{subnet}.#{m[:ip]}"] },
      "party" => machines.reject { |_, m| m[:party].nil? }.to_h { |name, m| [name.to_s, m[:party]] },
      "site" => machines.reject { |_, m| m[:site].nil? }.to_h { |name, m| [name.to_s, m[:site]] },
    }
  end

  def self.provisioner(config, name, playbook, network, scenario, run: nil)
    options = { type: "ansible" }
    options[:run] = run if run
    config.vm.provision name, **options do |ansible|
      ansible.playbook = playbook
      ansible.compatibility_mode = "2.0"
      ansible.groups = {
        "registries" => network["registry"],
        "sites" => network["sites"],
        "clients" => network["clients"],
      }
      ansible.extra_vars = { "mahiru_scenario" => scenario, "mahiru_machines" => network }
      ansible.extra_vars["wipe"] = true if ENV.fetch("MAHIRU_WIPE", "") == "1"
      ansible.raw_arguments = Shellwords.split(ENV.fetch("MAHIRU_ANSIBLE_ARGS", ""))
    end
  end

  def self.scenario(config, name:, subnet:, machines:)
    scenario_dir = File.join(COMMON_DIR, "..", name)
    network = network(machines, subnet)
    box = ENV.fetch("MAHIRU_VAGRANT_BOX", DEFAULT_BOX)

    config.vm.box = box
    config.vm.synced_folder ".", "/vagrant", disabled: true

    machines.each do |machine_name, spec|
      engine = spec[:role] != :client
      engine_volume = "mahiru-#{name.tr("_", "-")}-#{machine_name}-docker"
      config.vm.define machine_name.to_s do |machine|
        machine.vm.hostname = machine_name.to_s
        machine.vm.network "private_network", ip: "#{subnet}.#{spec[:ip]}"

        machine.vm.provider "libvirt" do |libvirt|
          libvirt.memory = engine ? 1024 : 512
          libvirt.cpus = engine ? 2 : 1
        end

        machine.vm.provider "virtualbox" do |vb|
          vb.memory = engine ? 1024 : 512
          vb.cpus = engine ? 2 : 1
        end

        machine.vm.provider "docker" do |docker, override|
          override.vm.box = nil
          docker.build_dir = File.join(COMMON_DIR, "machine")
          docker.build_args = [
            "--build-arg", "WITH_DOCKER=#{engine ? 1 : 0}",
            "--build-arg", "VAGRANT_PUBKEY=#{File.read(Vagrant.source_root.join("keys", "vagrant.pub")).strip}",
          ]
          docker.has_ssh = true
          docker.remains_running = true
          docker.name = "mahiru-#{name.tr("_", "-")}-#{machine_name}"
          if engine
            # What a container engine inside a container needs (without
            # --privileged, which not every host allows), and a volume for
            # its images and containers.
            docker.create_args = [
              "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "MKNOD",
              "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
              "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
              "-v", "#{engine_volume}:/var/lib/docker",
            ]
          end
        end

        if engine
          # `vagrant destroy` removes the container but not its named volume.
          machine.trigger.after :destroy do |trigger|
            trigger.ruby do |_env, destroyed|
              if destroyed.provider_name == :docker
                system("docker", "volume", "rm", "-f", engine_volume, out: File::NULL, err: File::NULL)
              end
            end
          end
        end
      end
    end

    provisioner(config, "base", File.join(COMMON_DIR, "base.yml"), network, name)
    provisioner(config, "mahiru_up", File.join(COMMON_DIR, "mahiru_up.yml"), network, name)
    provisioner(config, "mahiru_down", File.join(COMMON_DIR, "mahiru_down.yml"), network, name,
                run: "never")
    provisioner(config, "configure_sites", File.join(scenario_dir, "configure_sites.yml"),
                network, name, run: "never")
    provisioner(config, "run_experiment", File.join(scenario_dir, "run_experiment.yml"),
                network, name, run: "never")
  end
end
